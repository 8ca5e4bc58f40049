// board.network → /signet/network, the settings /init (bootloader/native/net.c) brings the
// guest's interface up with: DHCP unless the board gives a static address, DNS servers from the
// board; and the board file's network field refused when it cannot mean anything.
import { describe, expect, it } from 'vitest';
import { loadBoard, validateBoard } from '../sdk/board';
import { networkConfLine } from '../sdk/disk/network';

const base = loadBoard('qemu-virt-arm64');
const withNetwork = (network: unknown) => ({ ...JSON.parse(JSON.stringify(base)), network });

describe('board.network → /signet/network', () => {
  it('asks for eth0 by DHCP when the board says nothing, or says mode "dhcp"', () => {
    const { network: _none, ...noNetwork } = base;
    expect(networkConfLine(noNetwork)).toBe('eth0 dhcp\n');
    expect(networkConfLine(validateBoard(withNetwork({ mode: 'dhcp', interface: 'eth1' }), 'b.json'))).toBe('eth1 dhcp\n');
  });

  it('writes a static address (mode implied by the address), the gateway, and the DNS servers, one a line', () => {
    expect(networkConfLine(validateBoard(withNetwork({ address: '192.168.7.2/24', gateway: '192.168.7.1', dns: ['192.168.7.1', '9.9.9.9'] }), 'b.json'))).toBe(
      'eth0 192.168.7.2 24 192.168.7.1\ndns 192.168.7.1\ndns 9.9.9.9\n',
    );
    expect(networkConfLine(validateBoard(withNetwork({ mode: 'static', address: '10.1.0.5/16' }), 'b.json'))).toBe('eth0 10.1.0.5 16\n');
    // DHCP for the address, the board's resolver instead of the one DHCP names.
    expect(networkConfLine(validateBoard(withNetwork({ dns: ['10.0.2.2'] }), 'b.json'))).toBe('eth0 dhcp\ndns 10.0.2.2\n');
  });

  it.each([
    [{ mode: 'static' }, /network\.address: required with mode "static"/],
    [{ mode: 'dhcp', address: '10.0.2.15/24' }, /come from DHCP/],
    [{ gateway: '10.0.2.2' }, /network\.gateway: only with a static address/],
    [{ mode: 'bootp' }, /network\.mode: must be one of dhcp, static/],
    [{ dns: [] }, /network\.dns: needs 1\.\.3 entries/],
    [{ dns: ['1.1.1.1', '8.8.8.8', '9.9.9.9', '10.0.2.3'] }, /network\.dns: needs 1\.\.3 entries/],
    [{ dns: ['dns.example'] }, /network\.dns\[0\]/],
    [{ address: '10.0.2.15' }, /network\.address/], // no prefix
    [{ servers: ['1.1.1.1'] }, /network\.servers: unknown field/],
  ])('refuses network %j', (network, message) => {
    expect(() => validateBoard(withNetwork(network), 'b.json')).toThrow(message);
  });
});

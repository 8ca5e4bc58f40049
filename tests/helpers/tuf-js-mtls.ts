/**
 * A fetcher for tuf-js (a TUF client we did not write) that presents a device certificate: its
 * own fetcher (make-fetch-happen) cannot, so tests give it this one through its documented
 * `BaseFetcher` extension point. Same GETs, node:https; every trust decision stays tuf-js's.
 */
import { get } from 'node:https';
import type { Readable } from 'node:stream';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error';
import type { Identity } from '../../sdk/keys/device';

export class MtlsFetcher extends BaseFetcher {
  constructor(private readonly id: Identity) {
    super();
  }

  fetch(url: string): Promise<NodeJS.ReadableStream> {
    return new Promise((resolve, reject) => {
      get(url, { ca: this.id.caPem, cert: this.id.certPem, key: this.id.keyPem, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new DownloadHTTPError('Failed to download', res.statusCode ?? 0));
          return;
        }
        resolve(res as Readable);
      }).on('error', reject);
    });
  }
}

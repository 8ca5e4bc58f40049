/** What is compiled into a boot-stage bundle for one board (docs/boot-state.md §Build). */
export interface BootConfig {
  board: string;
  /** The flash device as the guest sees it, e.g. /dev/vda. `--disk <path>` overrides it. */
  device: string;
  sectorSize: number;
  /** The board's flash.eraseBlockSize when it has one (NOR behind mtdblock): the state partition's layout depends on it. */
  eraseBlockSize?: number;
  partitions: { slot_a: { offset: number; size: number }; slot_b: { offset: number; size: number }; state: { offset: number; size: number } };
  /**
   * Where an A/B disk keeps its boot environment (sdk/disk/boot-ab.ts); the stage confirms the
   * boot slot there only when it finds a valid copy, so a plain disk is never written there.
   */
  bootenv?: { offset: number; size: number };
  /** An A/B disk's boot slots (sdk/disk/boot-ab.ts): the OTA agent writes the inactive one. */
  bootSlots?: { boot_a: { offset: number; size: number }; boot_b: { offset: number; size: number } };
  /** The FIT public key(s) (hex, big-endian) the agent checks boot images with: U-Boot's `required = "conf"` key. */
  fitKeys?: { keyName: string; modulus: string; exponent: string }[];
  /** The boot image this stage was built into (`signet fit --version`), printed as boot[BOOT-IMAGE]. */
  bootRelease?: { version: string; securityCounter: number };
  /** The trust anchor: root.json as shipped (a TUF root envelope). */
  root: string;
  trialTries: number;
  /** Power off after the app returns (tests and `signet run`); otherwise reboot. */
  testMode: boolean;
}

// HTTPS servers the example fetches from once it serves (the host as QEMU's user-network gateway,
// 10.0.2.2), each checked against the test CA it carries. Empty here; tests/serve-arm64 writes
// its own servers' ports into a copy of the project.
export const FETCH_TARGETS: Array<{ port: number; servername: string }> = [];

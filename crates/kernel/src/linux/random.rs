//! getrandom, filled by the host's getrandom(2).

use atoll_abi::linux::errno::{EFAULT, EINVAL};
use atoll_abi::queue::Opcode;

use super::io::host_result;
use super::SysResult;
use crate::arch::x86_64::user;
use crate::offload;

const GRND_NONBLOCK: u64 = 1;
const GRND_RANDOM: u64 = 2;
const GRND_INSECURE: u64 = 4;
/// Linux returns at most this much per call.
const MAX_CHUNK: u64 = 0x01ff_ffff;

pub fn getrandom(buffer: u64, len: u64, flags: u64) -> SysResult {
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE)
    {
        return Err(EINVAL);
    }
    let len = len.min(MAX_CHUNK);
    if len == 0 {
        return Ok(0);
    }
    if !user::range_ok(buffer, len) {
        return Err(EFAULT);
    }
    host_result(offload::call(
        Opcode::GetRandom,
        [buffer, len, flags, 0, 0, 0],
    ))
}

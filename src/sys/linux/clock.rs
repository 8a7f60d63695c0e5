//! The kernel's word on the system clock: `adjtimex(2)` read-only (modes 0),
//! for the STAMP error estimate's S bit and its scale and multiplier.

use std::mem;

use crate::sys::KernelClock;

/// Asks the kernel how good the system clock is: `adjtimex(2)` with modes 0
/// changes nothing and needs no privilege. `None` when the call fails.
pub fn kernel_clock() -> Option<KernelClock> {
    // SAFETY: `timex` is plain old data, so all-zero is a valid value
    // (modes 0: read only, nothing is set).
    let mut tx: libc::timex = unsafe { mem::zeroed() };
    // SAFETY: `tx` is a live, writable timex for the call; with modes 0 the
    // kernel only fills it in and changes no clock state.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(KernelClock {
        unsync: tx.status & libc::STA_UNSYNC != 0,
        time_error: state == libc::TIME_ERROR,
        maxerror_us: u64::try_from(tx.maxerror).unwrap_or(u64::MAX),
        esterror_us: u64::try_from(tx.esterror).unwrap_or(u64::MAX),
    })
}

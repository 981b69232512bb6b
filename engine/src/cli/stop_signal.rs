//! SIGINT/SIGTERM for the long-running tools (`weir produce`, `weir consume`): the first
//! signal asks the tool to stop cleanly (flush, commit, leave the group, print its
//! summary), which its loop notices within one poll interval; a second signal exits at
//! once with 130, for when the clean stop itself hangs (a broker that went away).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Exit code of a process ended by a second signal (128 + SIGINT, as shells report it).
const EXIT_CODE_SECOND_SIGNAL: i32 = 130;

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap and _exit.
    if STOP_REQUESTED.swap(true, Ordering::SeqCst) {
        unsafe { libc::_exit(EXIT_CODE_SECOND_SIGNAL) };
    }
}

/// Installs the handler for SIGINT and SIGTERM. Without SA_RESTART, so a blocking
/// `read(2)` on stdin returns EINTR.
pub fn install() {
    let handler: extern "C" fn(libc::c_int) = on_stop_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler only touches
        // an atomic and _exit, both async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Whether SIGINT or SIGTERM arrived since `install()`.
pub fn requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

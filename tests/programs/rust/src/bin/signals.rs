//! Signals in a Rust std program, through the C library it links (no
//! crates): a handler for a raised signal, one that a std thread gets from
//! pthread_kill while it sleeps, and an interval timer's signal while the
//! main thread computes. Prints one line per case, to compare with a
//! native run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SIGUSR1: i32 = 10;
const SIGALRM: i32 = 14;
const ITIMER_REAL: i32 = 0;

#[repr(C)]
struct Timeval {
    seconds: i64,
    microseconds: i64,
}

#[repr(C)]
struct Itimerval {
    interval: Timeval,
    value: Timeval,
}

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn raise(signum: i32) -> i32;
    fn pthread_kill(thread: usize, signum: i32) -> i32;
    fn setitimer(which: i32, new: *const Itimerval, old: *mut Itimerval) -> i32;
}

static USR1: AtomicU64 = AtomicU64::new(0);
static ALARMS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: i32) {
    USR1.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_alarm(_: i32) {
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

fn main() {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: the handlers only touch atomics, which is async-signal-safe.
    unsafe {
        signal(SIGUSR1, on_usr1);
        signal(SIGALRM, on_alarm);
    }
    // SAFETY: raise has no memory preconditions.
    let raised = unsafe { raise(SIGUSR1) };
    println!(
        "raise: {raised}, handled {} time(s)",
        USR1.load(Ordering::SeqCst)
    );

    let sleeper = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        USR1.load(Ordering::SeqCst)
    });
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: the thread is alive (it sleeps 200 ms) and its pthread_t is
    // the one std gave it.
    let sent = unsafe { pthread_kill(sleeper.as_pthread_t() as usize, SIGUSR1) };
    // std's sleep goes on sleeping after the handler (it loops on EINTR).
    let seen_by_thread = sleeper.join().expect("thread");
    println!("pthread_kill: {sent}, handled {seen_by_thread} time(s) by the time the thread woke");

    let every_10ms = Itimerval {
        interval: Timeval {
            seconds: 0,
            microseconds: 10_000,
        },
        value: Timeval {
            seconds: 0,
            microseconds: 10_000,
        },
    };
    // SAFETY: setitimer reads the struct we pass and writes nothing.
    unsafe { setitimer(ITIMER_REAL, &every_10ms, std::ptr::null_mut()) };
    let mut spins = 0u64;
    while ALARMS.load(Ordering::SeqCst) < 3 {
        spins = std::hint::black_box(spins + 1);
    }
    let off = Itimerval {
        interval: Timeval {
            seconds: 0,
            microseconds: 0,
        },
        value: Timeval {
            seconds: 0,
            microseconds: 0,
        },
    };
    // SAFETY: as above.
    unsafe { setitimer(ITIMER_REAL, &off, std::ptr::null_mut()) };
    println!(
        "setitimer: at least 3 alarms while computing: {}",
        ALARMS.load(Ordering::SeqCst) >= 3
    );
}

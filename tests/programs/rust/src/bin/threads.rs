//! Rust std threads, one check per line, with output that is the same on
//! every run: spawn/join, Mutex, RwLock, Condvar, mpsc channels, Barrier,
//! sleep, park/unpark, thread_local!, scoped threads, a caught panic and
//! atomics.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

fn spawn_join() {
    let handles: Vec<_> = (1..=8u64).map(|n| thread::spawn(move || n * n)).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("spawn_join: 8 threads, sum of squares {sum}");
}

fn named_builder() {
    let handle = thread::Builder::new()
        .name("worker-7".into())
        .stack_size(256 * 1024)
        .spawn(|| thread::current().name().map(str::to_owned))
        .unwrap();
    let name = handle.join().unwrap();
    println!(
        "builder: name {name:?}, main is {:?}",
        thread::current().name()
    );
}

fn mutex() {
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for _ in 0..25_000 {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let guard = counter.lock().unwrap();
    let held = {
        let counter = Arc::clone(&counter);
        thread::spawn(move || counter.try_lock().is_err())
            .join()
            .unwrap()
    };
    println!(
        "mutex: counter {}, try_lock while held fails: {held}",
        *guard
    );
}

fn rwlock() {
    let table = Arc::new(RwLock::new([0u64; 16]));
    let consistent = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for id in 1..=2u64 {
        let table = Arc::clone(&table);
        handles.push(thread::spawn(move || {
            for _ in 0..500 {
                let mut t = table.write().unwrap();
                for entry in t.iter_mut() {
                    *entry += id;
                }
            }
        }));
    }
    for _ in 0..4 {
        let table = Arc::clone(&table);
        let consistent = Arc::clone(&consistent);
        handles.push(thread::spawn(move || {
            for _ in 0..1000 {
                let t = table.read().unwrap();
                if t.iter().all(|&v| v == t[0]) {
                    consistent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for handle in handles {
        handle.join().unwrap();
    }
    let t = table.read().unwrap();
    let second_reader = table.try_read().is_ok();
    let writer_blocked = table.try_write().is_err();
    println!(
        "rwlock: table[0] {} table[15] {}, consistent reads {} of 4000, \
         second reader {second_reader}, writer blocked {writer_blocked}",
        t[0],
        t[15],
        consistent.load(Ordering::Relaxed)
    );
}

fn condvar_queue() {
    const CAP: usize = 4;
    const PRODUCERS: u64 = 3;
    const PER_PRODUCER: u64 = 2000;
    struct Queue {
        items: Mutex<VecDeque<Option<u64>>>,
        not_empty: Condvar,
        not_full: Condvar,
    }
    let queue = Arc::new(Queue {
        items: Mutex::new(VecDeque::new()),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let put = |queue: &Queue, item: Option<u64>| {
        let mut items = queue
            .not_full
            .wait_while(queue.items.lock().unwrap(), |items| items.len() == CAP)
            .unwrap();
        items.push_back(item);
        queue.not_empty.notify_one();
    };
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let (mut sum, mut count) = (0u64, 0u64);
                loop {
                    let mut items = queue
                        .not_empty
                        .wait_while(queue.items.lock().unwrap(), |items| items.is_empty())
                        .unwrap();
                    let item = items.pop_front().unwrap();
                    queue.not_full.notify_one();
                    drop(items);
                    match item {
                        Some(value) => {
                            sum += value;
                            count += 1;
                        }
                        None => return (sum, count),
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for i in 1..=PER_PRODUCER {
                    put(&queue, Some(id * PER_PRODUCER + i));
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    for _ in 0..2 {
        put(&queue, None);
    }
    let (sum, count) = consumers
        .into_iter()
        .map(|c| c.join().unwrap())
        .fold((0, 0), |(s, c), (s2, c2)| (s + s2, c + c2));
    let n = PRODUCERS * PER_PRODUCER;
    println!(
        "condvar_queue: {count} items, sum {sum} (expected {})",
        n * (n + 1) / 2
    );
}

fn channels() {
    let (tx, rx) = mpsc::channel::<(usize, u64)>();
    for id in 0..4 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..1000 {
                tx.send((id, i)).unwrap();
            }
        });
    }
    drop(tx);
    let mut per_sender = [0u64; 4];
    let mut in_order = true;
    let mut last = [None::<u64>; 4];
    for (id, value) in rx {
        per_sender[id] += value;
        // One sender's messages arrive in the order it sent them.
        in_order &= last[id].map_or(value == 0, |prev| value == prev + 1);
        last[id] = Some(value);
    }
    // A bounded channel of zero capacity: a rendezvous.
    let (tx, rx) = mpsc::sync_channel::<u32>(0);
    let sender = thread::spawn(move || (0..100).all(|i| tx.send(i).is_ok()));
    let received: u32 = rx.iter().sum();
    let all_sent = sender.join().unwrap();
    println!(
        "channels: per-sender sums {per_sender:?}, in order {in_order}, \
         rendezvous sum {received}, all sent {all_sent}"
    );
}

fn barrier() {
    const THREADS: usize = 5;
    const PHASES: usize = 20;
    let barrier = Arc::new(Barrier::new(THREADS));
    let slots = Arc::new(
        (0..THREADS)
            .map(|_| AtomicUsize::new(0))
            .collect::<Vec<_>>(),
    );
    let handles: Vec<_> = (0..THREADS)
        .map(|id| {
            let barrier = Arc::clone(&barrier);
            let slots = Arc::clone(&slots);
            thread::spawn(move || {
                let (mut errors, mut leaders) = (0, 0);
                for phase in 0..PHASES {
                    slots[id].store(phase * 100 + id, Ordering::Relaxed);
                    leaders += usize::from(barrier.wait().is_leader());
                    for (other, slot) in slots.iter().enumerate() {
                        errors += usize::from(slot.load(Ordering::Relaxed) != phase * 100 + other);
                    }
                    leaders += usize::from(barrier.wait().is_leader());
                }
                (errors, leaders)
            })
        })
        .collect();
    let (errors, leaders) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |(e, l), (e2, l2)| (e + e2, l + l2));
    println!("barrier: {THREADS} threads, {PHASES} phases, errors {errors}, leaders {leaders}");
}

fn sleep() {
    let start = Instant::now();
    let sleeper = thread::spawn(|| {
        let start = Instant::now();
        thread::sleep(Duration::from_millis(30));
        start.elapsed()
    });
    thread::sleep(Duration::from_millis(20));
    let inner = sleeper.join().unwrap();
    let outer = start.elapsed();
    println!(
        "sleep: thread slept at least 30 ms {}, main waited at least 30 ms {}",
        inner >= Duration::from_millis(30),
        outer >= Duration::from_millis(30)
    );
}

fn park_unpark() {
    let flag = Arc::new(AtomicBool::new(false));
    let parked = {
        let flag = Arc::clone(&flag);
        thread::spawn(move || {
            let mut parks = 0u32;
            // Park may wake spuriously: loop on the flag.
            while !flag.load(Ordering::Acquire) {
                thread::park();
                parks += 1;
            }
            parks >= 1
        })
    };
    thread::sleep(Duration::from_millis(10));
    flag.store(true, Ordering::Release);
    parked.thread().unpark();
    let woke = parked.join().unwrap();
    // An unpark before park makes the next park return at once.
    thread::current().unpark();
    thread::park();
    println!("park_unpark: parked thread woke {woke}, token consumed true");
}

static DROPS: AtomicUsize = AtomicUsize::new(0);
static DROP_SUM: AtomicUsize = AtomicUsize::new(0);

struct Noisy(Cell<usize>);

impl Drop for Noisy {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
        DROP_SUM.fetch_add(self.0.get(), Ordering::SeqCst);
    }
}

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static NOISY: Noisy = const { Noisy(Cell::new(0)) };
}

fn thread_locals() {
    COUNT.with(|c| c.set(1000));
    let handles: Vec<_> = (1..=6)
        .map(|id| {
            thread::spawn(move || {
                let fresh = COUNT.with(Cell::get) == 0;
                for _ in 0..id {
                    COUNT.with(|c| c.set(c.get() + 1));
                    thread::yield_now();
                }
                NOISY.with(|n| n.0.set(id));
                fresh && COUNT.with(Cell::get) == id
            })
        })
        .collect();
    let all_ok = handles.into_iter().all(|h| h.join().unwrap());
    println!(
        "thread_local: private per thread {all_ok}, main still {}, destructors {} sum {}",
        COUNT.with(Cell::get),
        DROPS.load(Ordering::SeqCst),
        DROP_SUM.load(Ordering::SeqCst)
    );
}

fn scoped() {
    let mut data: Vec<u64> = (1..=1000).collect();
    let total = AtomicUsize::new(0);
    thread::scope(|s| {
        for chunk in data.chunks_mut(100) {
            let total = &total;
            s.spawn(move || {
                for value in chunk.iter_mut() {
                    *value *= 2;
                }
                total.fetch_add(chunk.iter().sum::<u64>() as usize, Ordering::Relaxed);
            });
        }
    });
    let sum: u64 = data.iter().sum();
    println!(
        "scope: 10 threads borrowed chunks, sum {sum}, reported {}",
        total.load(Ordering::Relaxed)
    );
}

fn panic_caught() {
    std::panic::set_hook(Box::new(|_| {}));
    let result = thread::spawn(|| -> u32 { panic!("deliberate") }).join();
    let message = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<&str>())
        .copied();
    let poisoned = Arc::new(Mutex::new(5));
    let _ = {
        let poisoned = Arc::clone(&poisoned);
        thread::spawn(move || {
            let _guard = poisoned.lock().unwrap();
            panic!("while holding the lock");
        })
        .join()
    };
    let _ = std::panic::take_hook();
    println!(
        "panic: join error {}, message {message:?}, mutex poisoned {}, value {}",
        result.is_err(),
        poisoned.is_poisoned(),
        poisoned.lock().unwrap_or_else(|e| e.into_inner())
    );
}

fn atomics() {
    let hits = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|id| {
            let hits = Arc::clone(&hits);
            let max = Arc::clone(&max);
            thread::spawn(move || {
                for i in 0..10_000 {
                    hits.fetch_add(1, Ordering::Relaxed);
                    max.fetch_max(id * 10_000 + i, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    static ONCE: OnceLock<usize> = OnceLock::new();
    let inits = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                ONCE.get_or_init(|| {
                    inits.fetch_add(1, Ordering::SeqCst);
                    42
                })
            });
        }
    });
    println!(
        "atomics: hits {}, max {}, arc strong count {}, once_lock {} initialised {} time(s)",
        hits.load(Ordering::Relaxed),
        max.load(Ordering::Relaxed),
        Arc::strong_count(&hits),
        ONCE.get().unwrap(),
        inits.load(Ordering::SeqCst)
    );
}

fn main() {
    spawn_join();
    named_builder();
    mutex();
    rwlock();
    condvar_queue();
    channels();
    barrier();
    sleep();
    park_unpark();
    thread_locals();
    scoped();
    panic_caught();
    atomics();
}

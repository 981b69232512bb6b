//! Cross-shard wake-ups are never lost, and a busy shard is still preempted.
//!
//! Goal: guard the two properties of glommio that weir's shards rely on and that any
//! change to its sleep path or its preemption timers (bench/RESULTS.md, "Session 11")
//! could break. A sleep handshake without a working barrier loses a wake-up now and
//! then: a message lands just as its receiver decides to sleep, nobody writes its
//! eventfd, and it sleeps on with the message queued.
//!
//! Method: two executors pinned to different cores (as shards are) play ping-pong the
//! way shards call each other: the request over a bounded glommio channel, the answer
//! over a oneshot whose waker fires from the other thread. Between messages each side
//! has nothing else to do, so it goes to sleep every time: tens of thousands of sleep
//! handshakes. Nothing else would wake a sleeper with a lost wake-up, so one lost
//! wake-up stalls the game; the test fails if a round trip takes over 5 s.
//!
//! A busy executor never sleeps, so its preemption timer is the only thing that makes
//! a task that keeps calling `yield_if_needed` give way to the loop, which is where
//! timers are fired: a task sleeping 20 ms beside it must wake, or the timer was lost.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

const ROUND_TRIPS: u32 = 20_000;
const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(5);

fn placement(core: usize) -> Placement {
    let cores = std::thread::available_parallelism().map_or(1, |count| count.get());
    if cores > 1 {
        Placement::Fixed(core % cores)
    } else {
        Placement::Unbound
    }
}

#[test]
fn ping_pong_between_sleeping_executors_never_loses_a_wake_up() {
    let (requests, incoming) = shared_channel::new_bounded::<(u32, oneshot::Sender<u32>)>(64);
    let (progress, watched) = mpsc::channel::<u32>();

    let server = LocalExecutorBuilder::new(placement(1))
        .name("wakeups-server")
        .spawn(move || async move {
            let incoming = incoming.connect().await;
            while let Some((value, answer)) = incoming.recv().await {
                let _ = answer.send(value + 1);
            }
        })
        .expect("server executor");

    let client = LocalExecutorBuilder::new(placement(0))
        .name("wakeups-client")
        .spawn(move || async move {
            let requests = requests.connect().await;
            for round in 0..ROUND_TRIPS {
                let (answer, answered) = oneshot::channel();
                requests
                    .send((round, answer))
                    .await
                    .map_err(|_| "server gone")
                    .expect("request sent");
                assert_eq!(answered.await.expect("answered"), round + 1);
                let _ = progress.send(round);
            }
        })
        .expect("client executor");

    let mut last = Instant::now();
    let mut done = 0;
    while done < ROUND_TRIPS {
        match watched.recv_timeout(ROUND_TRIP_LIMIT) {
            Ok(round) => {
                done = round + 1;
                last = Instant::now();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "round trip {done} of {ROUND_TRIPS} stalled for {:?}: a wake-up was lost",
                last.elapsed()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    assert_eq!(done, ROUND_TRIPS, "the client stopped early");
    client.join().expect("client");
    server.join().expect("server");
}

#[test]
fn a_task_that_never_sleeps_is_still_preempted_so_timers_fire() {
    let (done, finished) = mpsc::channel::<Duration>();
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("preemption")
        .spawn(move || async move {
            let started = Instant::now();
            let stop = std::rc::Rc::new(std::cell::Cell::new(false));
            let timer = glommio::spawn_local({
                let stop = stop.clone();
                async move {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                    stop.set(true);
                }
            })
            .detach();
            let mut turns = 0u64;
            while !stop.get() {
                std::hint::black_box(&mut turns);
                turns += 1;
                glommio::yield_if_needed().await;
            }
            timer.await;
            let _ = done.send(started.elapsed());
        })
        .expect("executor");
    let took = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the sleeping task woke: the busy task was preempted");
    assert!(took >= Duration::from_millis(20), "{took:?}");
    executor.join().expect("executor");
}

//! The timing harness shared by the Rust peer workers of `scripts/bench_peers.py` and
//! `scripts/bench_text_peers.py`: `benches/examples/peer_worker.rs` (clip-vision),
//! `benches/examples/text_peer_worker.rs` (clip-text) and `scripts/candle_worker` (candle, a
//! project of its own that compiles this file with `#[path]`, so it uses `std` only).
//!
//! It times calls exactly as the script's Python workers do: warm-up calls, then at least
//! `--iters` calls and `--min-time` seconds (at most `--max-iters` calls, `--max-wall`
//! seconds). A call during which other processes used more than `0.03 s + 10 %` of its wall
//! time in CPU (from `/proc/stat`, minus this process's own time) is dropped and re-run once
//! the machine is quiet, unless `--no-reject-busy` is given.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/stat` and `/proc/self/stat` (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

/// The worker's command line: `--key value` pairs and the flag `--no-reject-busy`.
pub struct Options {
    values: HashMap<String, String>,
    /// Whether calls disturbed by other processes are dropped (no `--no-reject-busy`).
    pub reject_busy: bool,
}

impl Options {
    /// Parses this process's arguments.
    pub fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut values = HashMap::new();
        let mut reject_busy = true;
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--no-reject-busy" {
                reject_busy = false;
                i += 1;
            } else {
                values.insert(
                    args[i].trim_start_matches("--").to_owned(),
                    args.get(i + 1).cloned().unwrap_or_default(),
                );
                i += 2;
            }
        }
        Self {
            values,
            reject_busy,
        }
    }

    /// The value of `--key`, else `default`.
    pub fn get(&self, key: &str, default: &str) -> String {
        self.values
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    /// Sets `--key` to `value` (a worker timing a second thing with other settings).
    pub fn set(&mut self, key: &str, value: impl ToString) {
        self.values.insert(key.to_owned(), value.to_string());
    }

    /// The number given with `--key`, else `default`; panics on a value that is not one.
    pub fn num(&self, key: &str, default: &str) -> f64 {
        self.get(key, default)
            .parse()
            .unwrap_or_else(|_| panic!("--{key} takes a number"))
    }
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// (CPU seconds of the whole machine, CPU seconds of this process).
fn sample() -> (f64, f64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let v: Vec<f64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((v[0] + v[1] + v[2] + v[5] + v[6]) / HZ)
        })
        .unwrap_or(0.0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / HZ)
        })
        .unwrap_or(0.0);
    (machine, own)
}

/// CPU seconds other processes used between two samples.
fn others(s0: (f64, f64), s1: (f64, f64)) -> f64 {
    ((s1.0 - s0.0) - (s1.1 - s0.1)).max(0.0)
}

/// Waits (up to `max_wait` s) for a second in which other processes used < 5 % of the
/// machine; returns the seconds waited.
fn wait_quiet(enabled: bool, max_wait: f64) -> f64 {
    let t0 = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    while enabled && t0.elapsed().as_secs_f64() < max_wait {
        let s0 = sample();
        std::thread::sleep(Duration::from_secs(1));
        if others(s0, sample()) < 0.05 * cores {
            break;
        }
    }
    t0.elapsed().as_secs_f64()
}

/// What [`time_calls`] measured.
pub struct Timing {
    /// Wall seconds of each kept call.
    pub times: Vec<f64>,
    /// Wall seconds of each call dropped as disturbed.
    pub dropped: Vec<f64>,
    /// Seconds spent waiting for a quiet machine.
    pub waited: f64,
    /// Whether `--max-wall` stopped the loop before `--iters` calls.
    pub hit_max_wall: bool,
}

/// Times `call` with the options' `--warmup`, `--iters`, `--min-time`, `--max-iters` and
/// `--max-wall`.
pub fn time_calls<T>(opts: &Options, mut call: impl FnMut() -> T) -> Timing {
    let (warmup, iters, min_time, max_iters, max_wall) = (
        opts.num("warmup", "3") as usize,
        opts.num("iters", "10") as usize,
        opts.num("min-time", "5"),
        opts.num("max-iters", "1000") as usize,
        opts.num("max-wall", "900"),
    );
    let reject_busy = opts.reject_busy;
    let mut waited = wait_quiet(reject_busy, max_wall);
    for _ in 0..warmup {
        std::hint::black_box(call());
    }
    let (mut times, mut dropped) = (Vec::new(), Vec::new());
    let (mut spent, start) = (0.0, Instant::now());
    while times.len() < iters || (spent < min_time && times.len() < max_iters) {
        if start.elapsed().as_secs_f64() > max_wall {
            break;
        }
        let s0 = sample();
        let t0 = Instant::now();
        std::hint::black_box(call());
        let dt = t0.elapsed().as_secs_f64();
        if reject_busy && others(s0, sample()) > 0.03 + 0.1 * dt {
            dropped.push(dt);
            waited += wait_quiet(reject_busy, max_wall);
            std::hint::black_box(call());
            continue;
        }
        times.push(dt);
        spent += dt;
    }
    let hit_max_wall = times.len() < iters;
    Timing {
        times,
        dropped,
        waited,
        hit_max_wall,
    }
}

impl Timing {
    /// The JSON fields every worker prints (without braces): times, memory, dropped calls.
    pub fn json_fields(
        &self,
        rss_start: Option<u64>,
        rss_libs: Option<u64>,
        rss_loaded: Option<u64>,
    ) -> String {
        let num = |v: Option<u64>| v.map_or("null".to_owned(), |n| n.to_string());
        let list = |v: &[f64]| {
            let items: Vec<String> = v.iter().map(|t| format!("{t:.6}")).collect();
            format!("[{}]", items.join(", "))
        };
        let hwm = num(proc_kib("VmHWM"));
        format!(
            "\"times_s\": {}, \"rss_start_kib\": {}, \"rss_after_import_kib\": {}, \"rss_after_load_kib\": {}, \"vmhwm_kib\": {hwm}, \"ru_maxrss_kib\": {hwm}, \"dropped_calls_s\": {}, \"waited_for_quiet_s\": {:.3}, \"hit_max_wall\": {}",
            list(&self.times),
            num(rss_start),
            num(rss_libs),
            num(rss_loaded),
            list(&self.dropped),
            self.waited,
            self.hit_max_wall
        )
    }
}

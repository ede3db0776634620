//! Issue 17: Debian's own dynamic programs: python3's start-up, a
//! CPU-bound and a syscall-heavy Python loop (with the share of calls that
//! trapped), and the sqlite3 CLI inserting and querying 100k rows.

use std::path::Path;
use std::process::Command;

use super::measure::{median_figure, median_wall_ms, ATOLL};

const PYTHON: &str = "/usr/bin/python3";
const SQLITE: &str = "/usr/bin/sqlite3";

/// A Python loop timed inside, so start-up stays out of the figure.
const CPU_LOOP: &str = "import time
t = time.perf_counter()
s = 0
for i in range(3_000_000):
    s += i * i % 7
print('loop_ms=%f' % ((time.perf_counter() - t) * 1000))";

const STAT_LOOP: &str = "import os, time
t = time.perf_counter()
for i in range(20_000):
    os.stat('/usr/lib')
print('stat_us=%f' % ((time.perf_counter() - t) * 1e6 / 20_000))";

const SQL: &str = "create table t (id integer primary key, x integer, name text);
begin;
with recursive n(i) as (select 1 union all select i + 1 from n where i < 100000)
insert into t (x, name) select i * 7 % 1000, 'row ' || i from n;
commit;
select count(*), sum(x), max(length(name)) from t where x % 3 = 0;
select x, count(*) from t group by x order by count(*) desc, x limit 3;";

fn isle(args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(ATOLL);
    command.arg("run").args(args).current_dir(dir);
    command
}

fn native(args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new(args[0]);
    command.args(&args[1..]).current_dir(dir);
    command
}

/// (calls, trapped) from a `--syscall-summary`'s total line.
fn trapped_share(args: &[&str], dir: &Path) -> (u64, u64) {
    let output = Command::new(ATOLL)
        .args(["run", "--syscall-summary"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let numbers: Vec<u64> = stderr
        .lines()
        .find(|line| line.trim_end().ends_with("  total"))
        .map(|line| {
            line.split_whitespace()
                .filter_map(|field| field.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match numbers[..] {
        [calls, rewritten, ..] => (calls, calls - rewritten),
        _ => (0, 0),
    }
}

pub fn dynamic_section() {
    println!("\n| Debian's dynamic programs | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    if !Path::new(PYTHON).exists() || !Path::new(SQLITE).exists() {
        println!(
            "| (python3 or sqlite3 missing: apt-get install python3 sqlite3) | - | - | - | - |"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("atoll-bench-dynamic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");

    let pass = [PYTHON, "-c", "pass"];
    let isle_start = median_wall_ms(30, || isle(&pass, &dir));
    let native_start = median_wall_ms(30, || native(&pass, &dir));
    println!(
        "| `python3 -c pass` wall time (median of 30) | {isle_start:.1} ms | {native_start:.1} ms | {:.1}x | report |",
        isle_start / native_start
    );

    let cpu = [PYTHON, "-c", CPU_LOOP];
    let isle_cpu = median_figure(|| isle(&cpu, &dir), "loop_ms", false);
    let native_cpu = median_figure(|| native(&cpu, &dir), "loop_ms", false);
    println!(
        "| CPU-bound Python loop (3M iterations), ms | {isle_cpu:.0} | {native_cpu:.0} | {:.2}x | about 1x |",
        isle_cpu / native_cpu
    );

    let stat = [PYTHON, "-c", STAT_LOOP];
    let isle_stat = median_figure(|| isle(&stat, &dir), "stat_us", false);
    let native_stat = median_figure(|| native(&stat, &dir), "stat_us", false);
    let (calls, trapped) = trapped_share(&stat, &dir);
    println!(
        "| Python os.stat loop, µs per call ({trapped} of {calls} calls trapped, {:.2}%) | {isle_stat:.2} | {native_stat:.2} | {:.2}x | report; under 5% trapped |",
        trapped as f64 * 100.0 / calls.max(1) as f64,
        isle_stat / native_stat
    );

    std::fs::write(dir.join("rows.sql"), SQL).expect("sql script");
    let database = |name: &'static str| {
        let dir = dir.clone();
        move || {
            let _ = std::fs::remove_file(dir.join(name));
            [SQLITE, name, ".read rows.sql"]
        }
    };
    let isle_sql = {
        let next = database("isle.db");
        median_wall_ms(5, || isle(&next(), &dir))
    };
    let native_sql = {
        let next = database("native.db");
        median_wall_ms(5, || native(&next(), &dir))
    };
    println!(
        "| sqlite3 CLI: 100k-row insert into a file, then queries, wall ms (median of 5) | {isle_sql:.0} | {native_sql:.0} | {:.2}x | report |",
        isle_sql / native_sql
    );
    let _ = std::fs::remove_dir_all(&dir);
}

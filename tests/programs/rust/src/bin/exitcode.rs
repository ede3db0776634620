//! Exits with status argv[1] (0 without an argument) via `std::process::exit`.

fn main() {
    let code = std::env::args()
        .nth(1)
        .and_then(|a| a.trim().parse::<i32>().ok())
        .unwrap_or(0);
    std::process::exit(code);
}

//! Issue 18: processes. fork + exit + wait, fork + exec of a static
//! `true`, posix_spawn of it (each from a C program timing its own loop),
//! a shell loop running external commands, and `make -j2` of a small C
//! project (gcc forks cc1, as and collect2, which runs ld).

use std::path::Path;
use std::process::Command;

use atoll_testprogs::{program, Flavor};

use super::measure::{median_figure, median_wall_ms, ATOLL};

const BUSYBOX: &str = "/bin/busybox";
/// External commands the shell loop runs.
const COMMANDS: u32 = 1000;
const MAKE: &str = "/usr/bin/make";
const GCC: &str = "/usr/bin/gcc";
/// The small C project's source files (and so its compiles).
const SOURCES: usize = 6;

pub fn processes_section() {
    println!("\n| processes | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    if !Path::new(BUSYBOX).exists() {
        println!("| (busybox missing: apt-get install busybox-static) | - | - | - | - |");
        return;
    }
    let forkloop = program(Flavor::Musl, "forkloop");
    for (mode, count, what) in [
        ("fork", "30", "fork + exit + wait"),
        ("forkexec", "20", "fork + exec of a static true + wait"),
        ("spawn", "20", "posix_spawn of a static true + wait"),
    ] {
        let isle = median_figure(
            || {
                let mut command = Command::new(ATOLL);
                command.arg("run").arg(&forkloop).args([mode, count]);
                command
            },
            "per_op_us",
            false,
        );
        let native = median_figure(
            || {
                let mut command = Command::new(&forkloop);
                command.args([mode, count]);
                command
            },
            "per_op_us",
            false,
        );
        println!(
            "| {what}, µs each | {isle:.0} | {native:.0} | {:.1}x | report |",
            isle / native
        );
    }
    let script =
        format!("i=0; while [ $i -lt {COMMANDS} ]; do /bin/busybox true; i=$((i+1)); done");
    let isle = median_wall_ms(1, || {
        let mut command = Command::new(ATOLL);
        command.args(["run", BUSYBOX, "sh", "-c", &script]);
        command
    });
    let native = median_wall_ms(1, || {
        let mut command = Command::new(BUSYBOX);
        command.args(["sh", "-c", &script]);
        command
    });
    println!(
        "| a shell loop of {COMMANDS} external commands, ms | {isle:.0} | {native:.0} | {:.1}x | report |",
        isle / native
    );
    make_row();
}

/// `make -j2` of a C project of [`SOURCES`] files and a link, from clean.
fn make_row() {
    if !Path::new(MAKE).exists() || !Path::new(GCC).exists() {
        println!("| (make or gcc missing: apt-get install make gcc) | - | - | - | - |");
        return;
    }
    let project = std::env::temp_dir().join(format!("atoll-bench-make-{}", std::process::id()));
    std::fs::create_dir_all(&project).expect("a scratch directory");
    let mut objects = String::new();
    for index in 0..SOURCES {
        let source = format!(
            "#include <stdio.h>\n#include <string.h>\n\
             int part{index}(const char *text) {{\n\
             size_t sum = 0;\n\
             for (size_t i = 0; i < strlen(text); i++) sum += (unsigned char)text[i] * {index};\n\
             return printf(\"part {index}: %zu\\n\", sum);\n}}\n"
        );
        std::fs::write(project.join(format!("part{index}.c")), source).expect("a source file");
        objects.push_str(&format!(" part{index}.o"));
    }
    let calls: String = (0..SOURCES)
        .map(|i| format!("part{i}(argv[0]); "))
        .collect();
    let declarations: String = (0..SOURCES)
        .map(|i| format!("int part{i}(const char *);\n"))
        .collect();
    std::fs::write(
        project.join("main.c"),
        format!(
            "{declarations}int main(int argc, char **argv) {{ (void)argc; {calls}return 0; }}\n"
        ),
    )
    .expect("main.c");
    std::fs::write(
        project.join("Makefile"),
        format!(
            "program: main.o{objects}\n\tgcc -o $@ $^\n\n%.o: %.c\n\tgcc -O2 -Wall -c $< -o $@\n"
        ),
    )
    .expect("the Makefile");
    let from_clean = |command: Command| {
        for entry in std::fs::read_dir(&project).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "o") || path.ends_with("program") {
                let _ = std::fs::remove_file(path);
            }
        }
        command
    };
    let isle = median_wall_ms(3, || {
        let mut command = Command::new(ATOLL);
        command
            .args(["run", MAKE, "-s", "-j2"])
            .current_dir(&project);
        from_clean(command)
    });
    let native = median_wall_ms(3, || {
        let mut command = Command::new(MAKE);
        command.args(["-s", "-j2"]).current_dir(&project);
        from_clean(command)
    });
    let _ = std::fs::remove_dir_all(&project);
    println!(
        "| make -j2 of {} C files and a link, ms (median of 3) | {isle:.0} | {native:.0} | {:.1}x | report |",
        SOURCES + 1,
        isle / native
    );
}

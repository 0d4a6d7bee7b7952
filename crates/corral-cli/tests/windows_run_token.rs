//! `corral run --token … --working-set …` on Windows, end to end: the
//! leader starts through `CreateProcessAsUserW` under the job, its exit
//! code comes through, and `corral doctor` names both features (and what
//! Wine does not keep). What the token and the limit are is read back by
//! the library's own Windows tests (windows_token.rs, windows_working_set.rs).

#![cfg(windows)]

mod windows_support;

use windows_support::{output, text, wine, CORRAL};

#[test]
fn run_with_a_token_and_a_working_set_keeps_the_commands_exit_code() {
    let kit = corral_testkit::binary();
    for token in ["restricted", "low-integrity"] {
        let out = output(
            std::process::Command::new(CORRAL)
                .args(["run", "--token", token, "--working-set", "2MiB:64MiB", "--report", "-", "--"])
                .arg(&kit)
                .args(["--exit", "7"])
                .stdin(std::process::Stdio::null()),
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(7), "{token}: {stdout} {stderr}");
        assert!(stdout.contains("\"leftover\":0"), "{token}: {stdout}");
        assert!(stdout.contains("\"spawn\":\"createprocess\""), "{token}: {stdout}");
    }
}

#[test]
fn a_bad_token_name_is_one_line_before_anything_starts() {
    let out = output(std::process::Command::new(CORRAL).args(["run", "--token", "admin", "--", "cmd", "/c", "exit 0"]));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("expected \"restricted\" or \"low-integrity\""), "{}", text(&out.stderr));
}

#[test]
fn doctor_names_the_token_and_the_working_set() {
    let out = output(std::process::Command::new(CORRAL).arg("doctor"));
    let s = text(&out.stdout);
    assert!(s.contains("leader token (isolate.token / --token)"), "{s}");
    assert!(s.contains("JOB_OBJECT_LIMIT_WORKINGSET"), "{s}");
    assert_eq!(s.contains("Wine keeps neither the integrity level"), wine(), "{s}");
}

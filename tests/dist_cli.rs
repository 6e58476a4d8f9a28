//! The rendezvous of multi-process training, as `dist-check` runs it over loopback with several
//! processes: every rank gets rank 0's id; a missing rank times out with a message; a wrong
//! world size is refused; a rank that dies ends the others within seconds; a port in use and bad
//! variables are one-line errors with their statuses. `train` refuses a group on the CPU.

use crate::common::sparsenet;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CHECK: &str = "dist-check";

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The group's secret in these tests (as a launcher would export it to every rank).
const TOKEN: &str = "dist-cli-test-token-0123456789abcdef";

/// `dist-check` as rank `rank` of `world` (torchrun's variables and the group's token), with
/// `args`.
fn rank(rank: usize, world: usize, port: u16, args: &[&str]) -> Command {
    let mut c = sparsenet(CHECK);
    c.args(args)
        .env_clear()
        .env("SPARSENET_DIST_TOKEN", TOKEN)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn all(children: Vec<Child>) -> Vec<(i32, String, String)> {
    children
        .into_iter()
        .map(|c| text(&c.wait_with_output().unwrap()))
        .collect()
}

#[test]
fn every_rank_receives_rank_zeros_id() {
    let port = free_port();
    let outs = all((0..4)
        .map(|r| rank(r, 4, port, &["--timeout", "30"]).spawn().unwrap())
        .collect());
    let mut ids = Vec::new();
    for (r, (code, out, err)) in outs.iter().enumerate() {
        assert_eq!(*code, 0, "rank {r}: {err}");
        assert!(
            out.starts_with(&format!(
                "rank {r} of 4 (local rank {r}, torchrun variables)"
            )),
            "{out}"
        );
        ids.push(out.trim_end().rsplit(' ').next().unwrap().to_string());
    }
    assert!(ids.iter().all(|i| *i == ids[0] && i.len() == 16), "{ids:?}");
    // Slurm's variables under srun, the address from the node list.
    let port = free_port();
    let outs = all((0..2)
        .map(|r| {
            let mut c = sparsenet(CHECK);
            c.args(["--timeout", "30"])
                .env_clear()
                .env("SLURM_PROCID", r.to_string())
                .env("SLURM_NTASKS", "2")
                .env("SLURM_LOCALID", r.to_string())
                .env("SLURM_STEP_NODELIST", "localhost")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect());
    for (code, out, err) in outs {
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("slurm variables") && out.contains("localhost"),
            "{out}"
        );
    }
}

#[test]
fn a_missing_rank_times_out_and_a_wrong_world_is_refused() {
    let port = free_port();
    let t0 = Instant::now();
    let outs = all((0..2)
        .map(|r| rank(r, 3, port, &["--timeout", "2"]).spawn().unwrap())
        .collect());
    assert!(t0.elapsed() < Duration::from_secs(20));
    for (code, _, err) in &outs {
        assert_eq!(*code, 1, "{err}");
        assert!(
            err.contains("rank 2 of 3 did not join within 2 s") && err.lines().count() == 1,
            "{err}"
        );
    }
    let port = free_port();
    let zero = rank(0, 2, port, &["--timeout", "3"]).spawn().unwrap();
    let one = rank(1, 3, port, &["--timeout", "3"]).output().unwrap();
    let (code, _, err) = text(&one);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("world has 3 ranks, rank 0 says 2"), "{err}");
    // Rank 0 hears it at once, not after its timeout.
    let (code, _, err) = text(&zero.wait_with_output().unwrap());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("world has 3 ranks, rank 0 says 2") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_rank_that_dies_ends_every_other_rank() {
    for victim in [2, 0] {
        let port = free_port();
        let mut children: Vec<Child> = (0..3)
            .map(|r| {
                rank(r, 3, port, &["--timeout", "30", "--hold", "60"])
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Wait until the victim has joined (its line is out), then kill -9 it.
        let mut line = String::new();
        let stdout = children[victim].stdout.as_mut().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert!(line.contains("every rank holds group id"), "{line}");
        let t0 = Instant::now();
        children[victim].kill().unwrap();
        for (r, c) in children.into_iter().enumerate() {
            let (code, _, err) = text(&c.wait_with_output().unwrap());
            if r == victim {
                assert_eq!(code, -1, "killed by a signal");
                continue;
            }
            assert_eq!(code, 1, "rank {r}: {err}");
            let want = if victim == 0 {
                "rank 0's store".to_string()
            } else {
                format!("rank {victim} left the group")
            };
            assert!(
                err.contains(&want) && err.lines().count() == 1,
                "rank {r}: {err}"
            );
        }
        // Not the 60 s hold, nor the 30 s timeout.
        assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    }
}

/// Without SPARSENET_DIST_TOKEN the group still forms, and rank 0 says once that its store is
/// unauthenticated; ranks that disagree on having a token are refused (exit 2).
#[test]
fn a_group_without_a_token_forms_and_says_so() {
    let port = free_port();
    let outs = all((0..2)
        .map(|r| {
            rank(r, 2, port, &["--timeout", "30"])
                .env_remove("SPARSENET_DIST_TOKEN")
                .spawn()
                .unwrap()
        })
        .collect());
    for (r, (code, _, err)) in outs.iter().enumerate() {
        assert_eq!(*code, 0, "rank {r}: {err}");
        let warned = err.matches("unauthenticated").count();
        assert_eq!(warned, usize::from(r == 0), "rank {r}: {err}");
    }
    let port = free_port();
    let r0 = rank(0, 2, port, &["--timeout", "5"]).spawn().unwrap();
    let r1 = rank(1, 2, port, &["--timeout", "5"])
        .env("SPARSENET_DIST_TOKEN", "another-token-0123456789abcdef")
        .spawn()
        .unwrap();
    let outs = all(vec![r0, r1]);
    let (code, _, err) = &outs[1];
    assert_eq!(*code, 2, "{err}");
    assert!(err.contains("wrong SPARSENET_DIST_TOKEN"), "{err}");
    // Rank 0 waited for a rank 1 that never proved itself: it timed out naming it.
    assert!(
        outs[0].2.contains("rank 1 of 2 did not join"),
        "{}",
        outs[0].2
    );
}

#[test]
fn a_port_in_use_and_bad_variables_are_one_line_errors() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let (code, _, err) = text(&rank(0, 2, port, &["--timeout", "2"]).output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("MASTER_PORT {port} is in use")) && err.lines().count() == 1,
        "{err}"
    );
    drop(held);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "no multi-process group"),
        (
            vec![
                ("RANK", "2"),
                ("WORLD_SIZE", "2"),
                ("LOCAL_RANK", "0"),
                ("MASTER_ADDR", "h"),
            ],
            "RANK=2",
        ),
        (vec![("RANK", "0"), ("WORLD_SIZE", "x")], "WORLD_SIZE='x'"),
        (
            vec![
                ("RANK", "0"),
                ("WORLD_SIZE", "2"),
                ("LOCAL_RANK", "0"),
                ("MASTER_ADDR", "h"),
                ("MASTER_PORT", "99999"),
            ],
            "MASTER_PORT='99999'",
        ),
    ];
    for (vars, want) in cases {
        let o = sparsenet(CHECK)
            .env_clear()
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let (code, _, err) = text(&o);
        assert_eq!(code, 2, "{vars:?}: {err}");
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{vars:?}: {err}"
        );
    }
    // A MASTER_ADDR that does not resolve, or is not this machine's (rank 0 listens on that
    // address only; 192.0.2.1 is TEST-NET, nobody's): bad input, exit 2.
    for (addr, want) in [
        ("no-such-host.invalid", "does not resolve"),
        ("192.0.2.1", "not an address of this machine"),
    ] {
        let o = rank(0, 2, free_port(), &["--timeout", "2"])
            .env("MASTER_ADDR", addr)
            .output()
            .unwrap();
        let (code, _, err) = text(&o);
        assert_eq!(code, 2, "{addr}: {err}");
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{addr}: {err}"
        );
    }
    // A huge world whose ranks never come: one short line, not a list of 65 535 ranks.
    let o = rank(0, 65_536, free_port(), &["--timeout", "1"])
        .output()
        .unwrap();
    let (code, _, err) = text(&o);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.lines().count() == 1 && err.len() < 300,
        "{} bytes: {}",
        err.len(),
        &err[..err.len().min(300)]
    );
    // train under a launcher's variables on the CPU: refused before anything runs.
    let o = sparsenet("train")
        .args(["--family", "res", "--depth", "8", "--epochs", "1"])
        .env_clear()
        .envs([
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
        ])
        .output()
        .unwrap();
    let (code, _, err) = text(&o);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rank 1 of 2") && err.contains("--device cuda"),
        "{err}"
    );
}

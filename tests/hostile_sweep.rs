//! A hostile user's sweep over every command (issue 40): out-of-range numbers, NaN, empty and
//! duplicate lists, unknown names, a FIFO, `/dev/zero`, a folder or a missing file where a file
//! should be, unwritable and multi-line output paths, launcher variables that lie. Each
//! invocation must end within 60 s under a 6 GB address-space limit with status 0–3 (never a
//! panic's 101 or an abort), and an error must be one line.

use crate::common::fresh_dir;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (command, arguments separated by spaces, launcher variables).
const CASES: &[(&str, &str, &str)] = &[
    ("paths", "--depth 0", ""),
    ("paths", "--depth 100001", ""),
    ("paths", "--base 1", ""),
    ("paths", "--offsets 0", ""),
    ("paths", "--offsets 1,1", ""),
    ("paths", "--offsets 99999999999999999999", ""),
    ("paths", "--bases 16..2", ""),
    ("paths", "--format xml", ""),
    ("paths", "--dag-file /dev/zero", ""),
    ("paths", "--dag-file fifo", ""),
    ("paths", "--dag-file missing", ""),
    ("paths", "--dag-file folder", ""),
    ("paths", "--random ws:k=3,p=0.1", ""),
    ("paths", "--random er:p=2", ""),
    ("paths", "--random er:p=nan", ""),
    ("paths", "--random ba:m=0", ""),
    ("paths", "--random er:p=0.5 --nodes 0", ""),
    ("paths", "--random er:p=0.5 --nodes 1000000000000", ""),
    ("paths", "--depth 10 --plot /proc/sparsenet", ""),
    ("zoo", "--model nope", ""),
    ("zoo", "--family dense --depth 1000000", ""),
    ("zoo", "--family dense --depth 100 --growth 100000", ""),
    ("zoo", "--family sparse --growth 0", ""),
    ("zoo", "--classes 1", ""),
    ("zoo", "--random er:p=0.9 --nodes 100000", ""),
    ("zoo", "--dag-file fifo", ""),
    ("train", "--epochs 0", ""),
    ("train", "--batch-size 0", ""),
    ("train", "--lr nan", ""),
    ("train", "--lr -1", ""),
    ("train", "--momentum 2", ""),
    ("train", "--model nope", ""),
    ("train", "--threads 0", ""),
    ("train", "--data-dir /dev/zero --out o", ""),
    ("train", "--data-dir fifo --out o", ""),
    ("train", "--dataset folder --data-dir folder --out o", ""),
    ("train", "--dataset cifar10 --data-dir folder --out o", ""),
    ("train", "--data embedded --quiet --epochs 1 --max-steps 1 --init-from fifo --out o", ""),
    ("train", "--data embedded --quiet --epochs 1 --max-steps 1 --init-from /dev/zero --out o", ""),
    ("train", "--data embedded --quiet --epochs 1 --max-steps 1 --resume --out folder", ""),
    ("train", "--data embedded --quiet --epochs 1 --max-steps 1 --out /proc/sparsenet", ""),
    ("train", "--data embedded --quiet --epochs 1 --max-steps 1 --max-memory 1 --out o", ""),
    ("evaluate", "--checkpoint /dev/zero", ""),
    ("evaluate", "--checkpoint fifo", ""),
    ("evaluate", "--checkpoint missing", ""),
    ("evaluate", "--checkpoint folder", ""),
    ("export", "--checkpoint fifo --out n.py", ""),
    ("export", "--checkpoint /dev/zero --out n.py", ""),
    ("study", "efficiency --grid /dev/zero", ""),
    ("study", "efficiency --grid fifo", ""),
    ("study", "efficiency --grid missing", ""),
    ("study", "efficiency --preset quick --seeds 1,1", ""),
    ("study", "efficiency --preset quick --epochs 0", ""),
    ("study", "efficiency --preset quick --shard 3/2", ""),
    ("study", "efficiency --preset quick --jobs 0", ""),
    ("study", "search --budget-params 0", ""),
    ("study", "search --budget-params 1", ""),
    ("study", "search --budget-params 77000 --candidates 0", ""),
    ("study", "search --budget-params 77000 --space dag --nodes 10,4", ""),
    ("study", "correlate missing", ""),
    ("study", "correlate folder", ""),
    ("study", "correlate fifo", ""),
    ("study", "merge missing", ""),
    ("study", "merge folder", ""),
    ("study", "weights --checkpoint fifo", ""),
    ("study", "lesion --checkpoint /dev/zero", ""),
    ("study", "prune --checkpoint fifo --keep 0.5", ""),
    ("study", "prune --checkpoint missing --keep nan", ""),
    ("study", "slurm --shards 0 -- efficiency --preset quick", ""),
    ("dist-check", "", "RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR="),
    ("dist-check", "--timeout 1", "RANK=0 WORLD_SIZE=99999999999999999999 LOCAL_RANK=0 MASTER_ADDR=localhost"),
    ("dist-check", "--timeout 1", "RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=localhost SPARSENET_DIST_TOKEN=short"),
    ("dist-check", "--timeout 1", "RANK=0 WORLD_SIZE=65536 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=0 SPARSENET_DIST_TOKEN=sweep-token-0123456789"),
];

#[test]
fn no_command_panics_hangs_or_floods_on_hostile_input() {
    let dir = fresh_dir("sweep");
    std::fs::create_dir_all(dir.join("folder")).unwrap();
    crate::common::mkfifo(&dir.join("fifo"));
    let mut bad = Vec::new();
    for (cmd, args, vars) in CASES {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg("ulimit -v 6000000; exec \"$@\"")
            .arg(cmd)
            .arg(crate::common::SPARSENET)
            .arg(cmd)
            .args(args.split(' ').filter(|a| !a.is_empty()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !vars.is_empty() {
            c.env_clear();
            for kv in vars.split(' ') {
                let (k, v) = kv.split_once('=').unwrap();
                c.env(k, v);
            }
        }
        let mut child = c.spawn().unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
        match status.and_then(|s| s.code()) {
            None => bad.push(format!("{cmd} {args}: hung or was killed by a signal")),
            Some(code) if code > 3 => bad.push(format!("{cmd} {args}: status {code}: {err}")),
            Some(code) if code != 0 && lines != 1 => bad.push(format!(
                "{cmd} {args}: status {code} with {lines} lines: {err}"
            )),
            Some(_) if err.contains("panicked") => bad.push(format!("{cmd} {args}: {err}")),
            Some(_) if err.len() > 2000 => {
                bad.push(format!("{cmd} {args}: {} bytes on stderr", err.len()))
            }
            Some(_) => {}
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

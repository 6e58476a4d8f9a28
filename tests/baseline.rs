//! The outputs the layering rebuild (issue 41) must leave byte-identical, captured before it
//! by `scripts/capture-outputs.sh` into `tests/baseline/`: `paths` (table, JSON, CSV, DOT, a
//! random DAG) and `zoo` (every row, JSON, the DAGs of five models, a random-DAG network and a
//! mixed-operator one). A change that alters any of them on purpose recaptures them in the same
//! commit and says why. (The training bits in `training.machine.txt` follow the CPU and are
//! compared by hand.)

use crate::common::fresh_dir;
use std::path::Path;
use std::process::Command;

#[test]
fn paths_and_zoo_outputs_match_the_captured_baseline() {
    let dir = fresh_dir("baseline");
    let bin = Path::new(env!("CARGO_BIN_EXE_paths")).parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("bash")
        .arg(root.join("scripts/capture-outputs.sh"))
        .arg(&dir)
        .env("BIN", bin)
        .env("SKIP_TRAINING", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let baseline = root.join("tests/baseline");
    let mut compared = 0;
    for e in std::fs::read_dir(&baseline).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".machine.txt") {
            continue;
        }
        let want = std::fs::read(e.path()).unwrap();
        let got = std::fs::read(dir.join(&name)).unwrap_or_default();
        assert!(
            want == got,
            "{name} differs from tests/baseline/{name} (rerun scripts/capture-outputs.sh if the change is meant)"
        );
        compared += 1;
    }
    assert_eq!(compared, 15, "the baseline's files");
    let _ = std::fs::remove_dir_all(&dir);
}

//! The GPU kernels' launches against their signatures. Kernel arguments travel untyped, so a
//! launch whose tuple disagrees with the kernel's parameter list reads garbage on the GPU (an
//! illegal address on the H200, once). This reads the sources as text, so it runs in every build,
//! CUDA or not.

const KERNELS: &str = include_str!("../src/gpu/kernels.cu");
const GPU_RS: &str = include_str!("../src/gpu/mod.rs");

/// The names listed in `KERNEL_NAMES` (what the module loads).
fn kernel_names() -> usize {
    let start = GPU_RS.find("const KERNEL_NAMES").expect("KERNEL_NAMES");
    let block = &GPU_RS[start..start + GPU_RS[start..].find("];").expect("end of list")];
    block.matches('"').count() / 2
}

/// Kernel arguments travel untyped, so a launch whose tuple disagrees with the kernel's
/// parameter list reads garbage on the GPU. Check every launch in src/gpu/mod.rs against the
/// signatures in kernels.cu: the count, and the type wherever the Rust side casts.
#[test]
fn launch_arguments_match_kernel_signatures() {
    let mut sigs = std::collections::HashMap::new();
    for part in KERNELS.split("__global__ void ").skip(1) {
        let name = &part[..part.find('(').unwrap()];
        let params = &part[part.find('(').unwrap() + 1..part.find(')').unwrap()];
        let kinds: Vec<&str> = params
            .split(',')
            .map(|p| {
                if p.contains('*') {
                    "ptr"
                } else if p.contains("long long") {
                    "i64"
                } else if p.contains("int") {
                    "i32"
                } else {
                    "f32"
                }
            })
            .collect();
        sigs.insert(name.to_string(), kinds);
    }
    assert_eq!(sigs.len(), kernel_names(), "every kernel is named");
    let src = GPU_RS;
    let mut checked = 0;
    for (start, _) in src.match_indices("launch") {
        let rest = &src[start..];
        let open = rest
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap();
        let head = &rest[..open];
        if !matches!(head, "launch" | "launch_blocks" | "launch_planes")
            || !rest[open..].starts_with('(')
        {
            continue;
        }
        let after = rest[open + 1..].trim_start();
        if !after.starts_with('"') {
            continue;
        }
        let name_start = rest.len() - after.len() + 1;
        let name = &rest[name_start..name_start + rest[name_start..].find('"').unwrap()];
        // The call's arguments: up to the parenthesis that closes the call.
        let mut depth = 0;
        let mut args = Vec::new();
        let mut cur = String::new();
        for ch in rest[open..].chars() {
            match ch {
                '(' | '[' => {
                    depth += 1;
                    if depth > 1 {
                        cur.push(ch)
                    }
                }
                ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        args.push(cur.clone());
                        break;
                    }
                    cur.push(ch)
                }
                ',' if depth == 1 => args.push(std::mem::take(&mut cur)),
                _ => cur.push(ch),
            }
        }
        // (rustfmt leaves a trailing comma after a multi-line last argument.)
        let tuple = args
            .iter()
            .rev()
            .find(|a| !a.trim().is_empty())
            .unwrap()
            .trim();
        let tuple = tuple.trim_start_matches('(').trim_end_matches(',');
        let tuple = tuple.strip_suffix(')').unwrap_or(tuple);
        let mut elems = Vec::new();
        let (mut d, mut e) = (0, String::new());
        for ch in tuple.chars() {
            match ch {
                '(' | '[' => {
                    d += 1;
                    e.push(ch)
                }
                ')' | ']' => {
                    d -= 1;
                    e.push(ch)
                }
                ',' if d == 0 => elems.push(std::mem::take(&mut e)),
                _ => e.push(ch),
            }
        }
        if !e.trim().is_empty() {
            elems.push(e);
        }
        let sig = &sigs[name];
        assert_eq!(
            elems.len(),
            sig.len(),
            "{name}: {} arguments for {} parameters",
            elems.len(),
            sig.len()
        );
        for (i, (el, kind)) in elems.iter().zip(sig).enumerate() {
            let el = el.trim();
            let cast = ["i64", "i32", "f32"]
                .into_iter()
                .find(|t| el.ends_with(&format!("as {t}")));
            if let Some(t) = cast {
                assert_eq!(t, *kind, "{name}: argument {i} ({el})");
            }
        }
        checked += 1;
    }
    assert!(checked >= kernel_names(), "found {checked} launches");
}

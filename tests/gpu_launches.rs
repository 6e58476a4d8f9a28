//! The GPU kernels' typed launch wrappers against the CUDA signatures. Every launch goes through
//! a wrapper generated from one declaration list, which `build.rs` reads off `kernels.cu`
//! (`build/kernel_decls.rs`), so the compiler checks each call's argument count and types; this
//! test checks that reading against a second one of the CUDA text, in every build, CUDA or not.
//! (A launch whose arguments disagreed with its kernel read garbage on the H200 once: an illegal
//! address.)

const KERNELS_CU: &str = include_str!("../src/gpu/kernels.cu");
const WRAPPERS: &str = include_str!("../src/gpu/kernels.rs");

/// A kernel's parameter kinds, from CUDA (`const float* x, int H, …`).
fn cuda_signatures() -> Vec<(String, Vec<&'static str>)> {
    KERNELS_CU
        .split("__global__ void ")
        .skip(1)
        .map(|part| {
            let name = &part[..part.find('(').unwrap()];
            let params = &part[part.find('(').unwrap() + 1..part.find(')').unwrap()];
            let kinds = params
                .split(',')
                .map(|p| {
                    if p.contains('*') {
                        "ptr"
                    } else if p.contains("long long") {
                        "i64"
                    } else if p.contains("int") {
                        "i32"
                    } else if p.contains("float") {
                        "f32"
                    } else {
                        panic!("{name}: unknown parameter type in '{p}'")
                    }
                })
                .collect();
            (name.to_string(), kinds)
        })
        .collect()
}

mod kernel_decls {
    include!("../build/kernel_decls.rs");
}

/// The declarations `build.rs` writes (`fn name(x: DevPtr, h_: i32, …);` inside
/// `kernels! { … }`), as (name, parameter kinds).
fn declared(decls: &str) -> Vec<(String, Vec<String>)> {
    let body = decls
        .strip_prefix("kernels! {")
        .expect("the kernels! invocation");
    let body = &body[..body.find("\n}").expect("end of the invocation")];
    body.split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let d = d.strip_prefix("fn ").expect("a fn declaration");
            let name = &d[..d.find('(').unwrap()];
            let args = &d[d.find('(').unwrap() + 1..d.rfind(')').unwrap()];
            let kinds = args
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| match a.split(':').nth(1).expect("name: type").trim() {
                    "DevPtr" => "ptr".to_string(),
                    t => t.to_string(),
                })
                .collect();
            (name.to_string(), kinds)
        })
        .collect()
}

#[test]
fn every_kernel_is_declared_with_its_exact_parameter_list() {
    let cuda = cuda_signatures();
    let ours = declared(&kernel_decls::declarations(KERNELS_CU).unwrap());
    assert_eq!(cuda.len(), 34, "kernels in kernels.cu");
    assert_eq!(
        ours.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        cuda.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "one wrapper per kernel, in the file's order"
    );
    for ((name, want), (_, got)) in cuda.iter().zip(&ours) {
        assert_eq!(
            got.iter().map(String::as_str).collect::<Vec<_>>(),
            *want,
            "{name}: declared parameters against the CUDA signature"
        );
    }
    // The kernels.rs the crate compiles declares nothing by hand: it includes build.rs's list.
    assert!(WRAPPERS.contains("include!(concat!(env!(\"OUT_DIR\"), \"/kernel_decls.rs\"))"));
    assert!(!WRAPPERS.contains("fn relu_fwd("));
}

#[test]
fn a_signature_reads_as_its_declaration() {
    // By hand: every type, an upper-case name, a keyword, a line break inside the list.
    let cu = "extern \"C\" __global__ void f(const float* x, float *y, int K,\n    long long total, float a, int in) {}";
    assert_eq!(
        kernel_decls::declarations(cu).unwrap(),
        "kernels! {\n    fn f(x: DevPtr, y: DevPtr, k_: i32, total: i64, a: f32, in_: i32);\n}\n"
    );
    let e = kernel_decls::declarations("__global__ void g(double x) {}").unwrap_err();
    assert!(e.contains("g:") && e.contains("double x"), "{e}");
}

/// Every Rust file under `src/gpu`, with its path relative to it.
fn gpu_sources() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("src/gpu") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                out.push((path.display().to_string(), text));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gpu"),
        &mut out,
    );
    out
}

#[test]
fn kernels_are_launched_only_through_the_wrappers() {
    // A launch builder is made, and a kernel launched, only in the typed wrappers' macro of
    // kernels.rs, once each.
    let sources = gpu_sources();
    assert!(sources.len() >= 8, "found {} files", sources.len());
    let (mut builders, mut launches) = (0, 0);
    for (file, src) in &sources {
        let b = src.matches(".launch_builder(").count();
        let l = src.matches(".launch(").count();
        if !file.ends_with("kernels.rs") {
            assert_eq!(
                b + l,
                0,
                "{file} launches a kernel without its typed wrapper"
            );
        }
        builders += b;
        launches += l;
    }
    assert_eq!(
        (builders, launches),
        (1, 1),
        "one launch builder and one launch, in the wrappers' macro"
    );
}

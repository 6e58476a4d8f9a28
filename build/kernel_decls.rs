// The typed launch declarations of `src/gpu/kernels.cu`'s kernels, read from their CUDA
// signatures so that they are written once: `build.rs` writes them for `src/gpu/kernels.rs`'s
// `kernels!` macro, and `tests/gpu_launches.rs` checks the reading. Plain functions over text,
// shared by both through `include!`.

/// A CUDA parameter's Rust type: a pointer is a `DevPtr`, `long long` an `i64`, `int` an `i32`,
/// `float` an `f32`; anything else is refused with the kernel's name.
pub fn rust_type(kernel: &str, param: &str) -> Result<&'static str, String> {
    if param.contains('*') {
        Ok("DevPtr")
    } else if param.contains("long long") {
        Ok("i64")
    } else if param.contains("int") {
        Ok("i32")
    } else if param.contains("float") {
        Ok("f32")
    } else {
        Err(format!(
            "{kernel}: the parameter '{}' has a type the launch wrappers do not know",
            param.trim()
        ))
    }
}

/// A CUDA parameter name as a Rust one: lower case, with `_` after a name that was upper case
/// (so `K` and `k` stay two names) or is a Rust keyword.
pub fn rust_name(param: &str) -> String {
    let name = param
        .trim()
        .rsplit(|c: char| c.is_whitespace() || c == '*')
        .next()
        .unwrap_or("")
        .to_string();
    let lower = name.to_lowercase();
    const KEYWORDS: &[&str] = &[
        "as", "box", "const", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod",
        "move", "mut", "ref", "self", "static", "struct", "type", "use", "where", "while",
    ];
    if lower != name || KEYWORDS.contains(&lower.as_str()) {
        format!("{lower}_")
    } else {
        lower
    }
}

/// `kernels! { fn name(arg: Type, …); … }` for every `__global__ void` kernel of `cu`, in the
/// file's order.
pub fn declarations(cu: &str) -> Result<String, String> {
    let mut out = String::from("kernels! {\n");
    for part in cu.split("__global__ void ").skip(1) {
        let open = part.find('(').ok_or("a kernel without a parameter list")?;
        let close = part.find(')').ok_or("a kernel whose parameter list does not end")?;
        let name = part[..open].trim();
        let mut args = Vec::new();
        for p in part[open + 1..close].split(',').filter(|p| !p.trim().is_empty()) {
            args.push(format!("{}: {}", rust_name(p), rust_type(name, p)?));
        }
        out.push_str(&format!("    fn {name}({});\n", args.join(", ")));
    }
    out.push_str("}\n");
    Ok(out)
}

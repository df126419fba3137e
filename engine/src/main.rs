//! The `hookflow` binary: everything lives in the library; see `cli`.

/// mimalloc: the hot paths (intake, group commit, JSON) allocate a lot of short-lived values,
/// where glibc malloc showed up as the single largest cost in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookflow::cli::main()
}

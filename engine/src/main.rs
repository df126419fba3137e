fn main() -> std::process::ExitCode {
    hookflow::cli::main()
}

//! `hookflow plugin new`: a plugin project that builds on its own. The plugin SDK and the WIT
//! interface travel inside the binary and are written into the project (`sdk/`), with the
//! dependency versions and lock file the built-in plugins are built and tested with, so someone
//! with only the `hookflow` binary and a Rust toolchain can write, build and run a plugin.

use std::path::{Path, PathBuf};

/// The SDK's sources as this binary was built with them.
const SDK_SOURCES: [(&str, &str); 4] = [
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/http.rs",
        include_str!("../../../plugins/sdk/src/http.rs"),
    ),
    (
        "src/input.rs",
        include_str!("../../../plugins/sdk/src/input.rs"),
    ),
    (
        "src/mail.rs",
        include_str!("../../../plugins/sdk/src/mail.rs"),
    ),
];
const WIT: &str = include_str!("../../../wit/plugin.wit");
const PLUGINS_WORKSPACE: &str = include_str!("../../../plugins/Cargo.toml");
const PLUGINS_LOCK: &str = include_str!("../../../plugins/Cargo.lock");

/// Where the bindings find the WIT file: beside the SDK's manifest once vendored, instead of
/// the repository's `wit/` two levels up.
const WIT_PATH_IN_REPO: &str = "path: \"../../wit\"";
const WIT_PATH_VENDORED: &str = "path: \"wit\"";

/// The SDK's dependencies, each exactly as the plugins' workspace pins it.
const SDK_DEPENDENCIES: [&str; 4] = ["serde", "serde_json", "wit-bindgen", "wasi"];

/// One file of a new project.
pub(super) struct ProjectFile {
    pub path: PathBuf,
    pub text: String,
}

/// The files of a vendored SDK under `dir` (`dir/Cargo.toml`, `dir/src/*.rs`, `dir/wit/`).
pub(super) fn vendored_sdk(dir: &Path) -> Vec<ProjectFile> {
    let mut manifest = String::from(
        "# The hookflow plugin SDK, vendored by `hookflow plugin new` (same sources and versions as\n\
         # the built-in plugins of the hookflow binary that wrote it).\n\
         [package]\nname = \"hookflow-plugin-sdk\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n",
    );
    for name in SDK_DEPENDENCIES {
        manifest.push_str(&workspace_dependency(name));
        manifest.push('\n');
    }
    let mut files = vec![
        ProjectFile {
            path: dir.join("Cargo.toml"),
            text: manifest,
        },
        ProjectFile {
            path: dir.join("wit/plugin.wit"),
            text: WIT.to_owned(),
        },
    ];
    for (path, text) in SDK_SOURCES {
        files.push(ProjectFile {
            path: dir.join(path),
            text: text.replace(WIT_PATH_IN_REPO, WIT_PATH_VENDORED),
        });
    }
    files
}

/// The lock file the built-in plugins build with: a new project starts from the same versions
/// (cargo drops the entries it does not need).
pub(super) fn lock_file() -> &'static str {
    PLUGINS_LOCK
}

/// The `name = ...` line of the plugins' `[workspace.dependencies]`.
fn workspace_dependency(name: &str) -> String {
    let prefix = format!("{name} = ");
    PLUGINS_WORKSPACE
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("plugins/Cargo.toml pins {name}"))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_sdk_is_complete_and_self_contained() {
        let files = vendored_sdk(Path::new("sdk"));
        let lib = files
            .iter()
            .find(|f| f.path == Path::new("sdk/src/lib.rs"))
            .unwrap();
        assert!(lib.text.contains(WIT_PATH_VENDORED));
        assert!(!lib.text.contains(WIT_PATH_IN_REPO));
        let manifest = &files[0].text;
        for name in SDK_DEPENDENCIES {
            assert!(manifest.contains(&format!("\n{name} = ")), "{manifest}");
        }
        assert!(!manifest.contains("workspace = true"), "{manifest}");
        // Every module the SDK declares is written.
        for module in ["http", "input", "mail"] {
            assert!(lib.text.contains(&format!("mod {module};")), "{module}");
            assert!(
                files
                    .iter()
                    .any(|f| f.path == Path::new(&format!("sdk/src/{module}.rs")))
            );
        }
        assert!(files.iter().any(|f| f.path.ends_with("wit/plugin.wit")));
        assert!(lock_file().contains("name = \"wit-bindgen\""));
    }
}

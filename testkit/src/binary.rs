//! The `certfleet` binary under test, and the repository the tests read files from.
//!
//! Cargo hands a test the path of a binary (`CARGO_BIN_EXE_<name>`) only when the test
//! lives in the binary's own package, and these tests are a package of their own (`tests/`).
//! Nor can a package depend on another's binary on stable cargo. So the suite builds the
//! binary itself: `cargo build -p certfleet --bin certfleet` into the target folder and
//! profile this test binary was built for, once per test process, before the first test
//! that runs it. When it is already current that is a no-op check; when the sources changed
//! since (say `cargo test -p certfleet-tests` after an edit to `web/`) it is what keeps a
//! test from running a stale binary. The binary is built as it ships: alone, with its own
//! features, not those the dev-dependencies of a `cargo test --workspace` unify into it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the folder of the top-level `Cargo.toml`; testkit is one of its
/// members).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ is inside the workspace")
        .to_path_buf()
}

/// The path of a current `certfleet` binary; the first call builds it, every test process
/// waits for that one build. Fails the calling test when the build fails.
pub fn certfleet() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(build) {
        Ok(path) => path,
        Err(why) => panic!("{why}"),
    }
}

fn build() -> Result<PathBuf, String> {
    // This test binary is <target>/<profile folder>/deps/system-<hash>.
    let test_binary =
        std::env::current_exe().map_err(|error| format!("the path of the test binary: {error}"))?;
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: not in <target>/<profile>/deps", test_binary.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{}: no target folder above it", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{}: no profile folder name", profile_dir.display()))?;

    // `CARGO` is the cargo that runs these tests (set by `cargo test`).
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .args(["-p", "certfleet", "--bin", "certfleet"])
        .arg("--target-dir")
        .arg(target_dir);
    // The folder is named after the profile, except the built-in `dev` (`debug`).
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let output = command
        .output()
        .map_err(|error| format!("run {} to build certfleet: {error}", cargo.display()))?;
    if !output.status.success() {
        return Err(format!(
            "building the certfleet binary failed ({:?}, {}):\n{}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = profile_dir.join("certfleet");
    if !binary.is_file() {
        return Err(format!("{} is missing after the build", binary.display()));
    }
    Ok(binary)
}

//! The Python bindings' test: build the wheel with maturin into a private virtualenv
//! (`target/py-venv`, made with the machine's python3; maturin and pytest come from the
//! Python package index, or PIP_FIND_LINKS), install it, run the pytest suite.

use std::path::Path;

use crate::run;

const VENV: &str = "target/py-venv";
const WHEELS: &str = "target/wheels/sop-py";

pub fn pytest() -> Result<(), String> {
    let python = format!("{VENV}/bin/python");
    if !Path::new(&python).exists() {
        run("python3", &["-m", "venv", VENV])?;
    }
    let pip_install = |args: &[&str]| {
        let mut all = vec![
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ];
        all.extend_from_slice(args);
        run(&python, &all)
    };
    pip_install(&["maturin>=1.9,<2", "pytest>=7"])?;
    // A fresh wheel each time: the folder holds only this build's.
    let _ = std::fs::remove_dir_all(WHEELS);
    run(
        &format!("{VENV}/bin/maturin"),
        &[
            "build",
            "--release",
            "--quiet",
            "-m",
            "crates/sop-py/Cargo.toml",
            "-i",
            &python,
            "-o",
            WHEELS,
        ],
    )?;
    let wheel = std::fs::read_dir(WHEELS)
        .map_err(|e| format!("no wheel in {WHEELS}: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("maturin left no wheel in {WHEELS}"))?;
    let wheel = wheel.to_string_lossy().into_owned();
    pip_install(&["--force-reinstall", "--no-deps", &wheel])?;
    run(
        &python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "crates/sop-py/python/tests",
        ],
    )
}

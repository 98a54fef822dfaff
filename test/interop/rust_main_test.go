package interop_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// rustBin is the absolute path of the Rust interop program (built from
// ./rust by TestMain); empty when it was not built, with rustSkip saying why.
var rustBin, rustDir, rustSkip string

// prepareRust builds the Rust interop program (./rust, the official Rust SDK
// iii-sdk 0.22.1 from the lock file) with `cargo build --locked`, once per
// test binary run; cargo itself decides what is stale, so a warm build takes
// a second or two. It is a debug build: a cold one needs well under half the
// CPU time of a release build (see rust/NOTES.md), and the program is fast
// enough unoptimised. The target directory is ./rust/target. Without cargo on
// PATH the Rust tests fail in CI (CI=true) and are skipped elsewhere.
func prepareRust() error {
	dir, err := filepath.Abs("rust")
	if err != nil {
		return err
	}
	rustDir = dir
	if _, err := exec.LookPath("cargo"); err != nil {
		if os.Getenv("CI") == "true" {
			return fmt.Errorf("the Rust interop tests build ./rust with cargo, which is not on PATH: %v", err)
		}
		rustSkip = fmt.Sprintf("cargo is not on PATH (%v): the Rust interop tests are skipped (they fail in CI)", err)
		fmt.Fprintf(os.Stderr, "interop: %s\n", rustSkip)
		return nil
	}
	start := time.Now()
	cmd := exec.Command("cargo", "build", "--locked")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+filepath.Join(dir, "target"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cargo build in %s: %v", dir, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		fmt.Fprintf(os.Stderr, "interop: built the Rust interop program in %v\n", d.Round(time.Second))
	}
	rustBin = filepath.Join(dir, "target", "debug", "iii-interop-rust")
	return nil
}

// requireRust skips the test when the Rust program could not be built
// because cargo is missing outside CI.
func requireRust(t testing.TB) {
	t.Helper()
	if rustBin == "" {
		t.Skip(rustSkip)
	}
}

// startRust runs `iii-interop-rust <role>` (see rust/NOTES.md) with
// III_URL=url and env, like startScript; the worker name defaults to
// interop-rust-<role>.
func startRust(t testing.TB, url, role string, env ...string) *proc {
	t.Helper()
	requireRust(t)
	cmd := exec.Command(rustBin, role)
	cmd.Dir = rustDir
	return startInterop(t, "rust "+role, cmd, url, "interop-rust-"+role, env...)
}

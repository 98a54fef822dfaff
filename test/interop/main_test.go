// Package interop_test runs the official Node SDK (iii-sdk 0.22.1, the
// scripts in ./node) and the official Rust SDK (iii-sdk 0.22.1, the program
// in ./rust) against the engine double, and against workers of this Go SDK:
// the double must be faithful enough that the foreign SDKs work on it
// unchanged, and Go, Node and Rust workers must understand each other
// through it.
//
// The suite needs node and npm. TestMain installs the Node dependencies from
// node/package-lock.json when node/node_modules is missing or older than the
// lock file, and fails (never skips) when node or npm is missing. It builds
// ./rust with cargo (see prepareRust); without cargo the Rust tests fail in
// CI and are skipped elsewhere.
//
// With III_ENGINE_URL set, the tests that need only routing run against
// that engine instead of a double, and the others skip (see ENGINE.md).
package interop_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// nodeDir is the absolute path of the Node scripts' directory.
var nodeDir string

// TestMain installs the Node SDK if needed and builds the Rust program, then
// runs the tests and fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	for _, prepare := range []func() error{prepareNode, prepareRust} {
		if err := prepare(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: interop: %v\n", err)
			os.Exit(1)
		}
	}
	goleak.VerifyTestMain(m)
}

// prepareNode finds node and npm and runs `npm ci` when node_modules does
// not match package-lock.json.
func prepareNode() error {
	dir, err := filepath.Abs("node")
	if err != nil {
		return err
	}
	nodeDir = dir
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the interop tests run the official Node SDK and need %s on PATH: %v", tool, err)
		}
	}
	stale, why, err := nodeModulesStale(dir)
	if err != nil || !stale {
		return err
	}
	fmt.Fprintf(os.Stderr, "interop: %s; running npm ci in %s\n", why, dir)
	// npm ci installs exactly what package-lock.json says, from whatever
	// registry npm is configured to use.
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %v", dir, err)
	}
	if stale, why, err := nodeModulesStale(dir); err != nil || stale {
		return fmt.Errorf("node_modules still not usable after npm ci: %s %v", why, err)
	}
	return nil
}

// nodeModulesStale reports whether dir/node_modules must be (re)installed.
// npm writes node_modules/.package-lock.json at the end of every install; it
// must exist and be at least as new as package-lock.json.
func nodeModulesStale(dir string) (bool, string, error) {
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false, "", fmt.Errorf("the Node scripts' lock file is missing: %v", err)
	}
	installed, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, "node_modules is not installed", nil
	case err != nil:
		return false, "", err
	case installed.ModTime().Before(lock.ModTime()):
		return true, "node_modules is older than package-lock.json", nil
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "iii-sdk", "package.json")); err != nil {
		return true, "node_modules has no iii-sdk", nil
	}
	return false, "", nil
}

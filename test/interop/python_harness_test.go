package interop_test

// The Python side of the interop suite: the scripts in ./python run the
// official Python SDK (iii-sdk 0.22.1, pinned with its dependencies in
// python/requirements.txt) against the engine double, with the same
// conventions as the Node scripts (JSON lines on stdout, stopped by closing
// stdin; see python/NOTES.md).
//
// The first Python test of a test binary installs the SDK into
// python/.venv (python3 -m venv, then pip install -r requirements.txt)
// unless the venv already holds exactly that requirements file for the same
// interpreter. Without a usable python3 (>= 3.10, with venv and pip) the
// Python tests fail when the CI environment variable is set, and are skipped
// with the reason otherwise.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pythonEnv is the prepared virtual environment, made once per test binary.
var pythonEnv struct {
	once sync.Once
	dir  string // absolute path of ./python
	bin  string // the venv's python
	// err says why the Python tests cannot run; missing marks a machine
	// without a usable python3 (a skip outside CI) as opposed to a failed
	// install (always a failure).
	err     error
	missing bool
}

// pythonSDKVersion is the iii-sdk version requirements.txt pins.
const pythonSDKVersion = "0.22.1"

// requirePython prepares the venv on first use, then skips or fails t if
// the Python SDK cannot run here.
func requirePython(t testing.TB) {
	t.Helper()
	pythonEnv.once.Do(func() {
		start := time.Now()
		pythonEnv.err = preparePython()
		if pythonEnv.err == nil {
			fmt.Fprintf(os.Stderr, "interop: Python SDK ready in %v\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if err := pythonEnv.err; err != nil {
		if pythonEnv.missing && !pythonStrictCI() {
			t.Skipf("the Python interop tests need python3 >= 3.10 with venv and pip (set CI=true to make this a failure): %v", err)
		}
		t.Fatalf("Python SDK unavailable: %v", err)
	}
}

// pythonStrictCI reports whether the CI environment variable asks for strict runs.
func pythonStrictCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

// preparePython finds python3 and makes sure python/.venv holds the pinned
// SDK.
func preparePython() error {
	dir, err := filepath.Abs("python")
	if err != nil {
		return err
	}
	pythonEnv.dir = dir
	pythonEnv.bin = filepath.Join(dir, ".venv", "bin", "python")

	python3, err := exec.LookPath("python3")
	if err != nil {
		pythonEnv.missing = true
		return fmt.Errorf("no python3 on PATH: %v", err)
	}
	// The interpreter must be new enough and able to make a venv with pip.
	probe := exec.Command(python3, "-c", `import sys, venv, ensurepip
assert sys.version_info >= (3, 10), "Python %d.%d is older than 3.10" % sys.version_info[:2]
print(sys.executable, sys.version.replace("\n", " "))`)
	var probeErr bytes.Buffer
	probe.Stderr = &probeErr
	id, err := probe.Output()
	if err != nil {
		pythonEnv.missing = true
		return fmt.Errorf("%s cannot make a virtual environment with pip: %v\n%s", python3, err, pyTailLines(probeErr.String(), 3))
	}

	reqs, err := os.ReadFile(filepath.Join(dir, "requirements.txt"))
	if err != nil {
		return fmt.Errorf("the Python scripts' requirements file is missing: %v", err)
	}
	sum := sha256.Sum256(reqs)
	stamp := fmt.Sprintf("requirements.txt sha256 %s\ninterpreter %s", hex.EncodeToString(sum[:]), bytes.TrimSpace(id))
	stampFile := filepath.Join(dir, ".venv", "iii-interop.stamp")
	if got, err := os.ReadFile(stampFile); err == nil && string(got) == stamp {
		if _, err := os.Stat(pythonEnv.bin); err == nil {
			return nil
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	venv := filepath.Join(dir, ".venv")
	fmt.Fprintf(os.Stderr, "interop: installing the Python SDK into %s (python3 -m venv; pip install -r requirements.txt)\n", venv)
	if err := os.RemoveAll(venv); err != nil {
		return err
	}
	steps := [][]string{
		{python3, "-m", "venv", venv},
		// pip installs exactly the pinned versions, from whatever index pip
		// is configured to use.
		{pythonEnv.bin, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
			"-r", filepath.Join(dir, "requirements.txt")},
		{pythonEnv.bin, "-c", `import importlib.metadata as m, iii, iii_helpers
v = m.version("iii-sdk")
assert v == "` + pythonSDKVersion + `", "iii-sdk " + v + " installed, want ` + pythonSDKVersion + `"`},
	}
	for _, argv := range steps {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v", strings.Join(argv, " "), err)
		}
	}
	return os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// pyTailLines returns the last n lines of s.
func pyTailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startPy runs `<venv>/bin/python <file>` in the scripts' directory with
// III_URL=url and env ("KEY=value", overriding the defaults: OTel off, 5 s
// call timeout, a recognisable worker name), with a stdin pipe that stays
// open until stop. It skips or fails t if Python is unavailable.
func startPy(t testing.TB, url, file string, env ...string) *proc {
	t.Helper()
	requirePython(t)
	cmd := exec.Command(pythonEnv.bin, file)
	cmd.Dir = pythonEnv.dir
	cmd.Env = append(os.Environ(),
		"III_URL="+url,
		"OTEL_ENABLED=false",
		"CALL_TIMEOUT_MS=5000",
		"III_WORKER_NAME="+uniqueWorkerName("interop-py-"+strings.TrimSuffix(file, ".py")),
		"EXIT_ON_STDIN_EOF=1",
		"PYTHONUNBUFFERED=1",
		"PYTHONIOENCODING=utf-8",
	)
	cmd.Env = append(cmd.Env, env...)
	p := &proc{t: t, name: "python " + file, cmd: cmd}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.interrupt = stdin.Close
	p.start()
	return p
}

package iii_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/iii-go/iii/test/iiitest"
)

// TestREADMEHTTPRoutesProgramServesCurl builds the program of the README's
// "HTTP routes" section as it is there, runs it against the engine double
// and sends it the README's curl requests.
func TestREADMEHTTPRoutesProgramServesCurl(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n## HTTP routes\n")
	if !ok {
		t.Fatal(`README.md has no "HTTP routes" section`)
	}
	_, code, ok := strings.Cut(sec, "```go\n")
	code, _, ok2 := strings.Cut(code, "```\n")
	if !ok || !ok2 {
		t.Fatal(`the "HTTP routes" section has no Go block`)
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	goMod := "module readme\n\ngo 1.26.0\n\nrequire github.com/iii-go/iii v0.0.0\n\nreplace github.com/iii-go/iii => " + root + "\n"
	for name, body := range map[string][]byte{"go.mod": []byte(goMod), "go.sum": sum, "main.go": []byte(code)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "todos")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	build := exec.Command("go", "build", "-mod=mod", "-o", exe, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the README's program: %v\n%s", err, out)
	}

	eng := iiitest.NewEngine(t)
	logs, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	output := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "III_URL="+eng.URL)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()

	base := eng.HTTPURL()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(testCtx(t), method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, r := range [][2]string{{"GET", "/todos/:id"}, {"POST", "/todos"}, {"DELETE", "/todos/:id"}} {
		if err := eng.WaitHTTPRoute(testCtx(t), r[0], r[1]); err != nil {
			t.Fatalf("route %s %s: %v; program output:\n%s", r[0], r[1], err, output())
		}
	}
	if code, body := do("POST", "/todos", `{"id":"1","title":"try iii"}`); code != 201 || body != "" {
		t.Errorf("POST /todos = %d %q", code, body)
	}
	if code, body := do("GET", "/todos/1", ""); code != 200 || body != "{\"id\":\"1\",\"title\":\"try iii\"}\n" {
		t.Errorf("GET /todos/1 = %d %q", code, body)
	}
	if code, body := do("DELETE", "/todos/1", ""); code != 204 || body != "" {
		t.Errorf("DELETE /todos/1 = %d %q", code, body)
	}
	if code, body := do("GET", "/todos/1", ""); code != 404 || body != "not found\n" {
		t.Errorf("GET /todos/1 after DELETE = %d %q", code, body)
	}
}

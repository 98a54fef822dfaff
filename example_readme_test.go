package iii_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// The README's first program, as it is there (TestREADMEProgramIsTheExample
// keeps the two the same), run against an engine double.
func Example_readme() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	os.Setenv("III_URL", eng.URL)
	defer os.Unsetenv("III_URL")

	// README begin
	ctx := context.Background()
	w := iii.RegisterWorker("", iii.InitOptions{}) // "": $III_URL, else ws://127.0.0.1:49134
	defer w.Close()

	_, err := iii.RegisterFunction(w, "greet::hello", func(ctx context.Context, name string) (string, error) {
		return "hello, " + name, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	msg, err := iii.Call[string](ctx, w, "greet::hello", "world")
	if err != nil {
		log.Fatal(err) // e.g. iii: call to greet::hello timed out waiting for a connection to the engine: <why>
	}
	fmt.Println(msg)
	// README end

	// Output: hello, world
}

// TestREADMEProgramIsTheExample fails when the README's program and the
// body of Example_readme differ, so that the README's code compiles and runs.
func TestREADMEProgramIsTheExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "\t// README begin\n")
	body, _, ok2 := strings.Cut(rest, "\t// README end\n")
	if !ok || !ok2 {
		t.Fatal("markers not found in example_readme_test.go")
	}
	want := "```go\n" + readmeHeader + "func main() {\n" + body + "}\n```"
	if !strings.Contains(string(readme), want) {
		t.Fatalf("README.md has no Go block equal to Example_readme's body; want:\n%s", want)
	}
}

// readmeHeader opens the README's program.
const readmeHeader = `package main

import (
	"context"
	"fmt"
	"log"

	"github.com/iii-go/iii"
)

`

// TestChangelogNamesTheVersion keeps iii.Version and CHANGELOG.md together:
// the newest release there is Version.
func TestChangelogNamesTheVersion(t *testing.T) {
	b, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "## "); ok && v != "Unreleased\n" {
			if got, _, _ := strings.Cut(strings.TrimSpace(v), " "); got != iii.Version {
				t.Fatalf("newest release in CHANGELOG.md is %q, iii.Version is %q", got, iii.Version)
			}
			return
		}
	}
	t.Fatal("no release in CHANGELOG.md")
}

// Command dispatcher-templates checks and previews an email template folder
// (docs/templates.md) before it is deployed:
//
//	dispatcher-templates check [DIR]
//	dispatcher-templates preview [-dir DIR] [-out OUTDIR] NAME
//
// `check` loads the folder as the functions do at cold start: every
// template parses and renders with its sample.json, and dispatcher.yaml's
// senders, template senders and grants hold. It prints each problem as
// FILE:LINE: message and exits 1 if there is any. `preview` renders one
// template with its sample data, to stdout or, with -out, into OUTDIR's
// subject.txt, body.txt and body.html. DIR defaults to the built-in folder
// (internal/emails/templates, as embedded in the functions).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dispatcher-dev/dispatcher/internal/emails"
)

const usage = `usage:
  dispatcher-templates check [DIR]
  dispatcher-templates preview [-dir DIR] [-out OUTDIR] NAME`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "check":
		err = check(args[1:], stdout)
	case "preview":
		err = preview(args[1:], stdout)
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// load reads DIR, or the built-in folder when DIR is "".
func load(dir string) (*emails.Dir, error) {
	if dir == "" {
		return emails.Builtin()
	}
	return emails.LoadDir(dir)
}

func check(args []string, stdout io.Writer) error {
	if len(args) > 1 {
		return errors.New(usage)
	}
	dir := ""
	if len(args) == 1 {
		dir = args[0]
	}
	d, err := load(dir)
	if err != nil {
		return err
	}
	names := d.Set.Names()
	fmt.Fprintf(stdout, "%s: ok: %d templates (%s)\n", d.Path, len(names), strings.Join(names, ", "))
	for _, n := range names {
		from := "SENDER_ADDRESS"
		if s, ok := d.SenderOf(n); ok {
			from = s.Wire().From
		}
		fmt.Fprintf(stdout, "  %s: from %s\n", n, from)
	}
	for _, cmd := range sortedGrants(d) {
		g := d.Grants[cmd]
		fmt.Fprintf(stdout, "  %s may send templates [%s] and events [%s]\n", cmd, strings.Join(g.Templates, ", "), strings.Join(g.Events, ", "))
	}
	return nil
}

func sortedGrants(d *emails.Dir) []string {
	return slices.Sorted(maps.Keys(d.Grants))
}

func preview(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("preview", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "the template folder (default: the built-in one)")
	out := fs.String("out", "", "write subject.txt, body.txt and body.html here instead of printing")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return errors.New(usage)
	}
	name := fs.Arg(0)
	d, err := load(*dir)
	if err != nil {
		return err
	}
	r, err := d.Preview(name)
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintf(stdout, "Subject: %s\n\n--- body.txt ---\n%s\n--- body.html ---\n%s\n", r.Subject, r.Text, r.HTML)
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for file, content := range map[string]string{"subject.txt": r.Subject + "\n", "body.txt": r.Text, "body.html": r.HTML} {
		if err := os.WriteFile(filepath.Join(*out, file), []byte(content), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s: rendered with %s/%s/%s into %s (open body.html in a browser)\n", name, d.Path, name, emails.SampleFile, *out)
	return nil
}

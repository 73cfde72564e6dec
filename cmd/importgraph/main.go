// Command importgraph draws the import graph of the repository's packages
// as a Mermaid flowchart, grouped in the three wings (the product, the
// local stack, the test kit), for docs/architecture.md: `make imports`.
// Test files are left out: the wings' rule is about what is built.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

const module = "github.com/dispatcher-dev/dispatcher/"

type pkg struct {
	ImportPath string
	Imports    []string
}

// wing names the group a package belongs to.
func wing(path string) string {
	switch {
	case strings.HasPrefix(path, "internal/local/"):
		return "local stack"
	case strings.HasPrefix(path, "internal/testkit/"):
		return "test kit"
	case strings.HasPrefix(path, "cmd/"), strings.HasPrefix(path, "bench/"):
		return "tools"
	case strings.HasPrefix(path, "functions/"):
		return "functions"
	}
	return "product"
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "importgraph:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		return fmt.Errorf("go list: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	groups := map[string][]string{}
	var edges []string
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return err
		}
		from := strings.TrimPrefix(p.ImportPath, module)
		if strings.HasPrefix(from, "bench/") {
			continue
		}
		groups[wing(from)] = append(groups[wing(from)], from)
		for _, imp := range p.Imports {
			if to, ok := strings.CutPrefix(imp, module); ok {
				edges = append(edges, fmt.Sprintf("  %s --> %s", id(from), id(to)))
			}
		}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "```mermaid")
	fmt.Fprintln(bw, "flowchart LR")
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		fmt.Fprintf(bw, "  subgraph %s[\"%s\"]\n", id(g), g)
		sort.Strings(groups[g])
		for _, p := range groups[g] {
			fmt.Fprintf(bw, "    %s[\"%s\"]\n", id(p), p)
		}
		fmt.Fprintln(bw, "  end")
	}
	sort.Strings(edges)
	for _, e := range edges {
		fmt.Fprintln(bw, e)
	}
	fmt.Fprintln(bw, "```")
	return bw.Flush()
}

func id(s string) string {
	return strings.NewReplacer("/", "_", "-", "_", " ", "_", ".", "_").Replace(s)
}

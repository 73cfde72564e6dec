package emailtemplate

import "text/template/parse"

// collectKeys adds to keys the top-level data keys that node refers to.
// atRoot says whether dot is still the data map: inside the body of a with
// or range it is not, so .x there is not a data key, while $.x always is.
// It walks every branch, which is what makes a key required even when only
// an untaken branch uses it.
func collectKeys(node parse.Node, atRoot bool, keys map[string]bool) {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			collectKeys(c, atRoot, keys)
		}
	case *parse.ActionNode:
		collectKeys(n.Pipe, atRoot, keys)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			collectKeys(c, atRoot, keys)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			collectKeys(a, atRoot, keys)
		}
	case *parse.FieldNode:
		if atRoot && len(n.Ident) > 0 {
			keys[n.Ident[0]] = true
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			keys[n.Ident[1]] = true
		}
	case *parse.ChainNode:
		collectKeys(n.Node, atRoot, keys)
	case *parse.IfNode:
		collectKeys(n.Pipe, atRoot, keys)
		collectKeys(n.List, atRoot, keys)
		collectKeys(n.ElseList, atRoot, keys)
	case *parse.WithNode:
		collectKeys(n.Pipe, atRoot, keys)
		collectKeys(n.List, false, keys)
		collectKeys(n.ElseList, atRoot, keys)
	case *parse.RangeNode:
		collectKeys(n.Pipe, atRoot, keys)
		collectKeys(n.List, false, keys)
		collectKeys(n.ElseList, atRoot, keys)
	case *parse.TemplateNode:
		collectKeys(n.Pipe, atRoot, keys)
	}
}

// Package templatedir writes template folders (internal/emails) for tests:
// the built-in one, a user's (the built-in plus an order-confirmation
// template sent by a shop sender), and broken ones.
package templatedir

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/emails"
)

// Files is a template folder: contents by slash-separated path.
type Files map[string]string

// Builtin returns the files of the built-in folder.
func Builtin(t testing.TB) Files {
	t.Helper()
	files := Files{}
	fsys := emails.BuiltinFS()
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The user's template and sender in User.
const (
	UserTemplate = "order-confirmation"
	UserFrom     = "Shop <orders@shop.example>"
	UserAddress  = "orders@shop.example"
	UserName     = "Shop"
	UserReplyTo  = "help@shop.example"
)

// UserConfig is User's dispatcher.yaml.
const UserConfig = `senders:
  shop:
    from: Shop <orders@shop.example>
    replyTo: [help@shop.example]
    identity: shop.example
templates:
  order-confirmation: shop
commands:
  Dispatch:
    templates: [notification, order-confirmation]
    events: ["order.*", OrderShipped]
`

// User is the built-in folder plus a user's order-confirmation template
// (data orderId and name) sent by a shop sender with a Reply-To, which
// Dispatch may send, with events order.* and OrderShipped.
func User(t testing.TB) Files {
	files := Builtin(t)
	files[UserTemplate+"/subject.txt"] = "Order {{.orderId}} is confirmed\n"
	files[UserTemplate+"/body.txt"] = "Hello {{.name}},\n\nyour order {{.orderId}} is on its way.\n"
	files[UserTemplate+"/body.html"] = "<p>Hello {{.name}},</p>\n<p>your order <b>{{.orderId}}</b> is on its way.</p>\n"
	files[UserTemplate+"/sample.json"] = "{\n  \"orderId\": \"o-1001\",\n  \"name\": \"Ada\"\n}\n"
	files[emails.ConfigFile] = UserConfig
	return files
}

// Broken is User with a subject that does not parse; BrokenFile and
// BrokenLine are where the check reports it.
func Broken(t testing.TB) Files {
	files := User(t)
	files[BrokenFile] = "Order {{.orderId\n"
	return files
}

// Where Broken's problem is, relative to the folder.
const (
	BrokenFile = UserTemplate + "/subject.txt"
	BrokenLine = 1
)

// Write writes files into a new temporary folder and returns its path.
func Write(t testing.TB, files Files) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

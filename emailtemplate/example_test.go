package emailtemplate_test

import (
	"errors"
	"fmt"
	"testing/fstest"

	"github.com/dispatcher-dev/dispatcher/emailtemplate"
)

// Your templates, in your service: one directory per template. In a
// Lambda, embed them (//go:embed templates) or read them with os.DirFS.
var templates = fstest.MapFS{
	"order-confirmation/subject.txt": {Data: []byte("Order {{.orderId}} is confirmed\n")},
	"order-confirmation/body.txt":    {Data: []byte("Hello {{.name}}, your order {{.orderId}} of {{.total}} is on its way.\n")},
	"order-confirmation/body.html":   {Data: []byte("<p>Hello {{.name}}, your order <b>{{.orderId}}</b> of {{.total}} is on its way.</p>\n")},
}

func ExampleSet_Email() {
	set, err := emailtemplate.LoadFS(templates)
	if err != nil {
		fmt.Println(err) // a broken template: fail at cold start, not at the first order
		return
	}
	mail, err := set.Email("order-confirmation", []string{"ada@example.com"},
		map[string]any{"orderId": "o-1001", "name": "Ada <script>", "total": "42.00"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(mail.Subject)
	fmt.Print(mail.HTML)
	// Output:
	// Order o-1001 is confirmed
	// <p>Hello Ada &lt;script&gt;, your order <b>o-1001</b> of 42.00 is on its way.</p>
}

func ExampleSet_Render_missingData() {
	set, _ := emailtemplate.LoadFS(templates)
	_, err := set.Render("order-confirmation", map[string]any{"orderId": "o-1001"})
	fmt.Println(errors.Is(err, emailtemplate.ErrMissingData))
	fmt.Println(err)
	// Output:
	// true
	// emailtemplate: missing template data: template "order-confirmation" needs "name", "total"
}

package dispatch

import "testing"

// BenchmarkParse is decode + validate of a typical command body.
func BenchmarkParse(b *testing.B) {
	body := []byte(`{"type":"Dispatch","aggregateId":"order-42","expectedVersion":3,"data":{"aggregateType":"Order","state":{"status":"paid","total":{"amount":1250,"currency":"EUR"}},"events":[{"type":"OrderPaid","data":{"amount":1250}}],"emails":[{"to":["Buyer <buyer@example.com>"],"template":"notification","data":{"title":"Paid","message":"Thanks"}}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

package obs

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestEmitWritesOneEMFLine(t *testing.T) {
	var buf bytes.Buffer
	m := NewMetrics(&buf, "Dispatcher")
	m.now = func() time.Time { return time.UnixMilli(1700000000123) }
	m.Emit(map[string]string{"Service": "command", "Reason": "validation-error"}, Metric{Name: "CommandRejected", Value: 1, Unit: Count})

	var line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Service, Reason string
		CommandRejected float64
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %v: %s", err, buf.String())
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Errorf("want exactly one line, got %q", buf.String())
	}
	cw := line.AWS.CloudWatchMetrics
	if line.AWS.Timestamp != 1700000000123 || len(cw) != 1 || cw[0].Namespace != "Dispatcher" {
		t.Fatalf("bad _aws block: %+v", line.AWS)
	}
	if got := cw[0].Dimensions; len(got) != 1 || len(got[0]) != 2 || got[0][0] != "Reason" || got[0][1] != "Service" {
		t.Errorf("dimensions = %v, want [[Reason Service]]", got)
	}
	if len(cw[0].Metrics) != 1 || cw[0].Metrics[0].Name != "CommandRejected" || cw[0].Metrics[0].Unit != "Count" {
		t.Errorf("metrics = %+v", cw[0].Metrics)
	}
	if line.Service != "command" || line.Reason != "validation-error" || line.CommandRejected != 1 {
		t.Errorf("values = %+v", line)
	}
}

// One line, counted under several dimension sets: the existing one (by
// command type) and the caller's.
func TestEmitSetsWritesEachDimensionSet(t *testing.T) {
	var buf bytes.Buffer
	m := NewMetrics(&buf, "Dispatcher")
	m.EmitSets(map[string]string{"Service": "command", "CommandType": "OpenAccount", "CallerId": "team-a"},
		[][]string{{"CommandType", "Service"}, {"CallerId", "Service"}}, Metric{Name: "CommandAccepted", Value: 1, Unit: Count})
	var line struct {
		AWS struct {
			CloudWatchMetrics []struct{ Dimensions [][]string }
		} `json:"_aws"`
		CallerId, CommandType, Service string
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(line.AWS.CloudWatchMetrics[0].Dimensions)
	if string(got) != `[["CommandType","Service"],["CallerId","Service"]]` || line.CallerId != "team-a" || line.CommandType != "OpenAccount" {
		t.Errorf("dimensions %s, line %+v", got, line)
	}
}

package main

import (
	"strings"
	"testing"
)

func TestLtyRowsReportBothPercentilesAsRatiosToTheOutbox(t *testing.T) {
	vals := map[string]float64{"lty-p50-ms": 2, "outbox-p50-ms": 8, "lty-p99-ms": 9, "outbox-p99-ms": 12}
	get := func(bench, unit string) (float64, bool) {
		v, ok := vals[unit]
		return v, ok && bench == ltyBench
	}
	rows := ltyRows(get)
	if len(rows) != 2 || rows[0].Ratio == nil || *rows[0].Ratio != 0.25 || rows[0].Holds != "yes" || rows[1].Holds != "-" {
		t.Errorf("rows %+v", rows)
	}
	if !strings.Contains(ltySuite.bench, ltyBench) || ltySuite.pkg != "./internal/apigw" {
		t.Errorf("suite %+v does not run %s", ltySuite, ltyBench)
	}
	missing := ltyRows(func(string, string) (float64, bool) { return 0, false })
	if missing[0].Holds != "no" || !strings.Contains(missing[0].Note, "not measured") {
		t.Errorf("without numbers: %+v", missing[0])
	}
}

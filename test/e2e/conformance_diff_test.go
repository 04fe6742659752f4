package e2e

import (
	"strings"
	"testing"
)

// TestDiffConformance checks the comparison rules on made-up runs (no Node needed).
func TestDiffConformance(t *testing.T) {
	ok := func(id string) conformanceCheck { return conformanceCheck{ID: id, Status: "SUCCESS"} }
	bad := func(id, msg string) conformanceCheck {
		return conformanceCheck{ID: id, Status: "FAILURE", ErrorMessage: msg}
	}
	tests := []struct {
		name            string
		direct, through conformanceRun
		wantProblems    []string // substrings, one per expected problem
		wantReport      []string // substrings of the report
	}{
		{
			name:       "identical",
			direct:     conformanceRun{"ping": {ok("ping")}},
			through:    conformanceRun{"ping": {ok("ping")}},
			wantReport: []string{"1 of 1 pass directly, 1 of 1 through the gateway", "no check differs"},
		},
		{
			name:         "scenario passes direct only",
			direct:       conformanceRun{"ping": {ok("ping")}},
			through:      conformanceRun{"ping": {bad("ping", "fetch failed")}},
			wantProblems: []string{"scenario ping passes directly but not through the gateway: ping: fetch failed", "check ping/ping"},
			wantReport:   []string{"UNEXPLAINED"},
		},
		{
			name:         "scenario missing through the gateway",
			direct:       conformanceRun{"ping": {ok("ping")}},
			through:      conformanceRun{},
			wantProblems: []string{"scenario ping passes directly", "check ping/ping: SUCCESS direct, absent"},
		},
		{
			name: "gateway passes more, explained",
			direct: conformanceRun{"dns-rebinding-protection": {
				bad("localhost-host-rebinding-rejected", "got 200"), ok("localhost-host-valid-accepted"),
			}},
			through: conformanceRun{"dns-rebinding-protection": {
				ok("localhost-host-rebinding-rejected"), ok("localhost-host-valid-accepted"),
			}},
			wantReport: []string{"0 of 1 pass directly, 1 of 1 through the gateway", "DNS-rebinding protection answers 403"},
		},
		{
			name: "same-origin request refused by the gateway is a defect",
			direct: conformanceRun{"dns-rebinding-protection": {
				bad("localhost-host-rebinding-rejected", "got 200"), ok("localhost-host-valid-accepted"),
			}},
			through: conformanceRun{"dns-rebinding-protection": {
				ok("localhost-host-rebinding-rejected"), bad("localhost-host-valid-accepted", "got 403"),
			}},
			wantProblems: []string{"check dns-rebinding-protection/localhost-host-valid-accepted"},
		},
		{
			name:       "check lost to the 405 on GET in a scenario failing anyway",
			direct:     conformanceRun{"sse": {ok("get-stream"), bad("other", "x")}},
			through:    conformanceRun{"sse": {bad("get-stream", "GET returned 405"), bad("other", "x")}},
			wantReport: []string{"GET on an MCP route answers 405"},
		},
		{
			name:         "unexplained check regression in a scenario failing anyway",
			direct:       conformanceRun{"s": {ok("a"), bad("b", "x")}},
			through:      conformanceRun{"s": {bad("a", "boom"), bad("b", "x")}},
			wantProblems: []string{"check s/a: SUCCESS direct, FAILURE through the gateway, and no known reason"},
			wantReport:   []string{`UNEXPLAINED: direct (no message); gateway "boom"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, report := diffConformance(tt.direct, tt.through)
			if len(problems) != len(tt.wantProblems) {
				t.Fatalf("problems = %q, want %d matching %q", problems, len(tt.wantProblems), tt.wantProblems)
			}
			for i, want := range tt.wantProblems {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], want)
				}
			}
			for _, want := range tt.wantReport {
				if !strings.Contains(report, want) {
					t.Errorf("report lacks %q:\n%s", want, report)
				}
			}
		})
	}
}

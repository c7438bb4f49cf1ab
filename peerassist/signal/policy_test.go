package signal

import (
	"strings"
	"testing"
)

func TestPolicySlurpieProbability(t *testing.T) {
	const head = `{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","x_policy":{"upload_budget_bps":1,"edge_allowance_bps":2,"use_peers":true`
	tests := []struct {
		member  string
		want    float64
		wantErr string
	}{
		{``, 0, ""},
		{`,"slurpie_probability":0.25`, 0.25, ""},
		{`,"slurpie_probability":1`, 1, ""},
		{`,"slurpie_probability":null`, 0, ""},
		{`,"slurpie_probability":1.5`, 0, "x_policy.slurpie_probability"},
		{`,"slurpie_probability":-0.1`, 0, "x_policy.slurpie_probability"},
		{`,"slurpie_probability":"0.5"`, 0, "x_policy.slurpie_probability"},
	}
	for _, tt := range tests {
		var r Response
		err := ParseResponse([]byte(head+tt.member+`}}`), &r)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want one about %s", tt.member, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.member, err)
			continue
		}
		if r.Policy == nil || r.Policy.SlurpieProbability != tt.want {
			t.Errorf("%s: policy %+v, want slurpie_probability %g", tt.member, r.Policy, tt.want)
		}
		// It round-trips, and 0 is left out.
		out := string(r.Policy.AppendJSON(nil))
		if has := strings.Contains(out, "slurpie_probability"); has != (tt.want > 0) {
			t.Errorf("%s: AppendJSON = %s", tt.member, out)
		}
	}
}

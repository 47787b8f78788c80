package genkitguard

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/firebase/genkit/go/ai"

	"github.com/agentguard/go-sdk/credentials"
)

// errUncheckable: a tool's output could not be checked for the values of
// its credentials, so it is not given to the model.
var errUncheckable = errors.New("genkitguard: output cannot be checked for credential values")

// scrubResponse returns resp with the values of creds removed from all of
// it (output, content parts, metadata), through its JSON form, which is
// what the model is given. A response holding no value is returned as it
// is; one that does not encode as JSON cannot be checked and is refused.
func scrubResponse(resp *ai.MultipartToolResponse, creds []*credentials.Credential) (*ai.MultipartToolResponse, error) {
	if resp == nil || len(creds) == 0 {
		return resp, nil
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUncheckable, err)
	}
	clean := credentials.Scrub(string(b), creds...)
	if clean == string(b) {
		return resp, nil
	}
	var out ai.MultipartToolResponse
	if err := json.Unmarshal([]byte(clean), &out); err != nil {
		return nil, fmt.Errorf("%w: %w", errUncheckable, err)
	}
	return &out, nil
}

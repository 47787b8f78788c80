package main

import (
	"embed"
	"io/fs"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/policy"
)

//go:embed policies/*.cedar
var policyFiles embed.FS

// newEngine is the example's Cedar engine: the embedded policies, validated
// against the schema of the agent's tools (so a typo in an attribute is an
// error here, not a silent deny).
func newEngine(tools []*agentguard.Tool) (*policy.CedarEngine, error) {
	sub, err := fs.Sub(policyFiles, "policies")
	if err != nil {
		return nil, err
	}
	set, err := policy.LoadFS(sub)
	if err != nil {
		return nil, err
	}
	schema, err := agentguard.PolicySchema(tools...)
	if err != nil {
		return nil, err
	}
	return policy.NewCedarEngine(set, policy.WithSchema(schema))
}

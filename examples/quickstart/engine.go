package main

import (
	"embed"
	"io/fs"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentguard/go-sdk/agentguard"
	"github.com/agentguard/go-sdk/policy"
)

//go:embed policies/*.cedar
var policyFiles embed.FS

// loadPolicies parses the Cedar policies embedded in the binary.
func loadPolicies() (*policy.Set, error) {
	sub, _ := fs.Sub(policyFiles, "policies")
	return policy.LoadFS(sub)
}

// agentGroups is the quickstart's group configuration: the AgentGroups each
// agent is in, by SPIFFE ID. Only the support bot is in one.
func agentGroups(supportBot spiffeid.ID) map[string][]string {
	return map[string][]string{supportBot.String(): {"support"}}
}

// newEngine is the quickstart's policy engine: set, with agents in groups,
// every policy validated against the schema of tools (policies/support.cedarschema
// is that schema, written out for review).
func newEngine(set *policy.Set, groups map[string][]string, tools []*agentguard.Tool) (*policy.CedarEngine, error) {
	schema, err := agentguard.PolicySchema(tools...)
	if err != nil {
		return nil, err
	}
	return policy.NewCedarEngine(set, policy.WithAgentGroups(groups), policy.WithSchema(schema))
}

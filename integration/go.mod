module github.com/agentguard/go-sdk/integration

go 1.26.0

replace github.com/agentguard/go-sdk => ../

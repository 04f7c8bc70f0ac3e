# One command runs the demo, one runs the tests (see README.md).

.PHONY: deps demo demo-saas test check fmt bench release

deps:
	scripts/deps.sh

demo: deps
	cargo run --bin wecom-gateway -- demo -c gateway.toml

# The SaaS demo: a service provider's app installed by two corps (README, "Service-provider apps").
demo-saas: deps
	cargo run --bin wecom-gateway -- demo -c saas.toml

test: deps
	scripts/test.sh

check:
	cargo run --bin wecom-gateway -- check -c gateway.toml

fmt:
	cargo fmt --all

bench: deps
	bench/run.sh

# The production binary, profile-guided: target/pgo/release/wecom-gateway (README, "Going to
# production").
release: deps
	scripts/pgo.sh

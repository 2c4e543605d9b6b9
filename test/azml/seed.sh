#!/usr/bin/env bash
# The seed article, "Deploy an R model to an online (real time) endpoint", its az ml
# commands as written, with az as plumbline. Run from a folder laid out like the
# article's (examples/r-iris, with models/crate.bin trained).
set -e
shopt -s expand_aliases
alias az=plumbline

# "Register model": the article registers the crate without giving the command; this is
# az ml model create's own example form.
az ml model create --name iris-crate --version 1 --path ./models

az ml online-endpoint create -f endpoint.yml

# The article names the file r-deployment.yml; the folder's is deployment.yml.
az ml online-deployment create -f deployment.yml --all-traffic --skip-script-validation

az ml online-endpoint invoke --name r-endpoint-iris --request-file sample_request.json

# Without a terminal az asks for --yes as plumbline does.
az ml online-endpoint delete --name r-endpoint-iris --yes

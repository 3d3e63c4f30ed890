"""The once-per-account AWS bootstrap: what the stacks and the workflows assume exists.

`jobs` names the workflow job kinds and the GitHub OIDC subject each runs under,
`iam` writes their trust and permission documents, `variables` turns the bootstrap
stack's outputs into the repository variables the workflows read (`llmops bootstrap
print-vars`). The Pulumi program is `bootstrap/__main__.py`; its resources are
`components/aws/bootstrap.py`.
"""

"""Extracts the schemas Lumen's mock answers are checked against from OpenAI's published
OpenAPI document (https://github.com/openai/openai-openapi, MIT licence) into
`schemas.json` next to this file: the response objects and stream events of chat
completions, completions, embeddings, responses and models, with every schema they refer to.
Descriptions and examples are dropped; OpenAPI's `nullable: true` becomes JSON Schema's null
alternative so that a plain JSON Schema 2020-12 validator reads it.

Usage: python extract.py PATH/TO/openapi.yaml [COMMIT]
"""

import json
import sys
from pathlib import Path

import yaml

ROOTS = [
    "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse", "CreateCompletionResponse",
    "CreateEmbeddingResponse", "Response", "Model", "ListModelsResponse",
    "ResponseCreatedEvent", "ResponseInProgressEvent", "ResponseOutputItemAddedEvent",
    "ResponseContentPartAddedEvent", "ResponseTextDeltaEvent", "ResponseTextDoneEvent",
    "ResponseContentPartDoneEvent", "ResponseOutputItemDoneEvent", "ResponseCompletedEvent",
    "ResponseIncompleteEvent",
]
DROPPED = {
    "description", "example", "examples", "title", "deprecated", "discriminator", "x-oaiMeta", "x-oaiExpandable",
    "x-oaiTypeLabel", "x-stainless-const", "x-stainless-naming", "x-stainless-variantName", "x-stainless-skip",
}


def clean(node):
    if isinstance(node, list):
        return [clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: clean(value) for key, value in node.items() if key not in DROPPED and key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [result, {"type": "null"}]}
    return result


def main():
    spec = yaml.safe_load(Path(sys.argv[1]).read_text())
    schemas = spec["components"]["schemas"]
    kept = set()

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                    name = value.rsplit("/", 1)[1]
                    if name not in kept:
                        kept.add(name)
                        visit(schemas[name])
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for root in ROOTS:
        kept.add(root)
        visit(schemas[root])
    document = {
        "source": "https://github.com/openai/openai-openapi/blob/master/openapi.yaml"
        + (f" at {sys.argv[2]}" if len(sys.argv) > 2 else ""),
        "openapi": spec["openapi"],
        "components": {"schemas": {name: clean(schemas[name]) for name in sorted(kept)}},
    }
    out = Path(__file__).with_name("schemas.json")
    out.write_text(json.dumps(document, indent=None, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{len(kept)} schemas written to {out}")


if __name__ == "__main__":
    main()

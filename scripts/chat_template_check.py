#!/usr/bin/env python3
"""Reference chat renderings for ChatTemplateTests: every template file named on the command line
rendered by transformers' own `render_jinja_template` (what `apply_chat_template` runs: jinja2's
sandbox with trim_blocks and lstrip_blocks, transformers' tojson, raise_exception, strftime_now)
for each conversation of CONVERSATIONS (a JSON list of {"messages", "add_generation_prompt"}),
with bos_token "<s>" and eos_token "</s>". Prints {file: [text or {"error": message}]}.

Pinned versions: transformers==5.25.0 jinja2==3.1.6

Usage:  python3 scripts/chat_template_check.py CONVERSATIONS.json TEMPLATE.jinja...
"""

import json
import sys

from transformers.utils.chat_template_utils import render_jinja_template

conversations = json.load(open(sys.argv[1], encoding="utf-8"))
result = {}
for path in sys.argv[2:]:
    template = open(path, encoding="utf-8").read()
    renderings = []
    for conversation in conversations:
        try:
            rendered, _ = render_jinja_template(
                conversations=[conversation["messages"]], chat_template=template,
                add_generation_prompt=conversation["add_generation_prompt"], bos_token="<s>", eos_token="</s>")
            renderings.append(rendered[0])
        except Exception as error:  # the template refuses this conversation (raise_exception) or fails
            renderings.append({"error": f"{type(error).__name__}: {error}"})
    result[path] = renderings
json.dump(result, sys.stdout, ensure_ascii=False)

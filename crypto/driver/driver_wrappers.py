#!/usr/bin/env python3
"""Generates mbedTLS 3.6's PSA driver wrappers with imapguard's OpenSSL driver.

mbedTLS generates library/psa_crypto_driver_wrappers.h and
psa_crypto_driver_wrappers_no_static.c from driver descriptions (JSON) and
Jinja templates (scripts/generate_driver_wrappers.py). In 3.6 the templates
dispatch only some entry points from the JSON descriptions (import_key,
export_key, export_public_key, copy_key, get_builtin_key); the others are
written by hand for mbedTLS's own test and p256-m drivers. This script copies
the templates and adds, in front of the built-in fallback of each one-shot
entry point listed in ENTRY_POINTS, the same JSON-driven dispatch that
mbedTLS's template uses for import_key (OS-template-transparent.jinja): every
transparent driver whose description lists the entry point is called, and
PSA_ERROR_NOT_SUPPORTED falls through to the next one and then to mbedTLS's
own code. Nothing else in the templates changes. Then it runs mbedTLS's own
generator with a driver list made of mbedTLS's drivers plus ours.

Usage: driver_wrappers.py MBEDTLS_SOURCE DRIVER_JSON OUTPUT_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

# entry point -> (wrapper function, anchor line before which the dispatch
# goes, its parameters, a condition the dispatch needs in that function)
ENTRY_POINTS = {
    "sign_hash": (
        "psa_driver_wrapper_sign_hash",
        "/* Fell through, meaning no accelerator supports this operation */",
        "attributes, key_buffer, key_buffer_size, alg, hash, hash_length, "
        "signature, signature_size, signature_length",
        None),
    "verify_hash": (
        "psa_driver_wrapper_verify_hash",
        "return( psa_verify_hash_builtin(",
        "attributes, key_buffer, key_buffer_size, alg, hash, hash_length, "
        "signature, signature_length",
        None),
    "generate_key": (
        "psa_driver_wrapper_generate_key",
        "/* Software fallback */",
        "attributes, key_buffer, key_buffer_size, key_buffer_length",
        # drivers get no custom production parameters (as in mbedTLS's own
        # dispatch a few lines above)
        "PSA_KEY_TYPE_IS_ASYMMETRIC( psa_get_key_type(attributes) ) && is_default_production"),
    "key_agreement": (
        "psa_driver_wrapper_key_agreement",
        "/* Software Fallback */",
        "attributes, key_buffer, key_buffer_size, alg, peer_key, peer_key_length, "
        "shared_secret, shared_secret_size, shared_secret_length",
        None),
    "aead_encrypt": (
        "psa_driver_wrapper_aead_encrypt",
        "/* Fell through, meaning no accelerator supports this operation */",
        "attributes, key_buffer, key_buffer_size, alg, nonce, nonce_length, "
        "additional_data, additional_data_length, plaintext, plaintext_length, "
        "ciphertext, ciphertext_size, ciphertext_length",
        None),
    "aead_decrypt": (
        "psa_driver_wrapper_aead_decrypt",
        "/* Fell through, meaning no accelerator supports this operation */",
        "attributes, key_buffer, key_buffer_size, alg, nonce, nonce_length, "
        "additional_data, additional_data_length, ciphertext, ciphertext_length, "
        "plaintext, plaintext_size, plaintext_length",
        None),
}

TEMPLATE = "psa_crypto_driver_wrappers.h.jinja"


def dispatch(entry_point, params, condition):
    """The Jinja block that calls every driver declaring entry_point."""
    head = "{%% with entry_point = \"%s\" -%%}\n" % entry_point
    head += "{% macro entry_point_param(driver) -%}\n" + params + "\n{% endmacro %}\n"
    body = ("{% with nest_indent=12 %}\n"
            "{% include \"OS-template-transparent.jinja\" -%}\n"
            "{% endwith -%}\n")
    if condition:
        body = ("            if( %s )\n            {\n" % condition + body.replace(
            "nest_indent=12", "nest_indent=16") + "            }\n")
    return ("            /* imapguard: transparent drivers declaring %s (driver_wrappers.py) */\n"
            % entry_point + head + body + "{% endwith -%}\n")


def splice(text):
    for entry_point, (function, anchor, params, condition) in ENTRY_POINTS.items():
        start = text.find("static inline psa_status_t %s(" % function)
        if start < 0:
            sys.exit("driver_wrappers.py: %s not found in %s" % (function, TEMPLATE))
        end = text.find("\nstatic inline ", start + 1)
        at = text.find(anchor, start)
        if at < 0 or (end >= 0 and at > end):
            sys.exit("driver_wrappers.py: '%s' not found in %s" % (anchor, function))
        line = text.rfind("\n", 0, at) + 1
        text = text[:line] + dispatch(entry_point, params, condition) + text[line:]
    return text


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    root, driver_json, out = (os.path.abspath(a) for a in sys.argv[1:])
    data = os.path.join(root, "scripts", "data_files")
    with tempfile.TemporaryDirectory() as tmp:
        templates = os.path.join(tmp, "templates")
        jsons = os.path.join(tmp, "jsons")
        shutil.copytree(os.path.join(data, "driver_templates"), templates)
        shutil.copytree(os.path.join(data, "driver_jsons"), jsons)
        path = os.path.join(templates, TEMPLATE)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(splice(text))
        with open(os.path.join(jsons, "driverlist.json"), encoding="utf-8") as f:
            drivers = json.load(f)
        shutil.copy(driver_json, jsons)
        drivers.append(os.path.basename(driver_json))
        with open(os.path.join(jsons, "driverlist.json"), "w", encoding="utf-8") as f:
            json.dump(drivers, f)
        os.makedirs(out, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(root, "scripts", "generate_driver_wrappers.py"),
                        "--project-root", root, "--template-dir", templates,
                        "--json-dir", jsons, out], check=True)


if __name__ == "__main__":
    main()

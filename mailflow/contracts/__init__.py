"""Pydantic models of every JSON document that crosses a queue: the public contract.

JSON Schema files are generated from these (`mailflow schema`); field names on the wire
are camelCase, and input also accepts snake_case.
"""

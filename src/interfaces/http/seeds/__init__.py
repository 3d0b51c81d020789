"""Seed compatibility: each seed document's own routes and shapes, onto the native use cases.

A client written against a seed works unchanged. Every route here maps a seed's request
onto the use case its native twin calls and maps the answer back; nothing else happens here.
Each seed's module (`seed000`, `seed001`, `seed003`) names its routes and what it maps.
Errors keep the uniform `{error, detail, fields?}` shape and name fields in the seed's terms.
"""

from __future__ import annotations

from interfaces.http.seeds import seed000, seed001, seed003

SEED_ROUTES = [*seed000.ROUTES, *seed001.ROUTES, *seed003.ROUTES]

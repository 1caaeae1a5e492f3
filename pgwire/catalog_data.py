"""The pg_catalog and information_schema relations, generated from `QueryEngine.tables()`, and
a small DataFusion session that answers clients' catalog queries over them.

Every relation has Postgres 16's columns (the ones clients read; `*` gives them all), typed as
Postgres types them (oid -> int8 on the wire, "char"/name -> text, arrays as lists). Rows:
the served tables (`public`, OIDs from 16384) and these catalogs themselves (`pg_catalog`),
their columns, the types rstq speaks (`types.TYPES`), one database, one role, the server's
settings, and table/column docs as descriptions. Catalogs of things rstq has none of (indexes,
constraints, defaults, functions, triggers, ...) are empty, with their columns.

Catalog functions (`format_type`, `pg_get_expr`, `pg_table_is_visible`, `has_*_privilege`,
...) are Python UDFs named `<name>__<arity>` taking text arguments; `rewrite.py` renames calls.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datafusion import SessionConfig, SessionContext, udf
from rstq.pgwire import rewrite as R
from rstq.pgwire import types as T
from rstq.query.api import QueryError, TableDef
from rstq.query.errors import query_error

FIRST_TABLE_OID = 16384
OWNER = "rstq"
OWNER_OID = 10
DATABASE_OID = 16383
PG_CATALOG, PUBLIC, INFORMATION_SCHEMA = 11, 2200, 13000
NAMESPACES = {PG_CATALOG: "pg_catalog", PUBLIC: "public", INFORMATION_SCHEMA: "information_schema"}
PG_CLASS_OID = 1259
TEXT_COLLATION = 100  # "default"

# Postgres type names -> (Arrow type, pg type OID) for the catalogs' own columns.
_COLUMN_TYPES: dict[str, tuple[pa.DataType, int]] = {
    "oid": (pa.int64(), T.OID), "name": (pa.string(), T.NAME), "char": (pa.string(), T.CHAR),
    "text": (pa.string(), T.TEXT), "bool": (pa.bool_(), T.BOOL), "int2": (pa.int16(), T.INT2),
    "int4": (pa.int32(), T.INT4), "int8": (pa.int64(), T.INT8),
    "float4": (pa.float32(), T.FLOAT4), "float8": (pa.float64(), T.FLOAT8),
    "xid": (pa.int64(), 28), "regproc": (pa.string(), 24), "pg_node_tree": (pa.string(), 194),
    "aclitem[]": (pa.list_(pa.string()), 1034), "text[]": (pa.list_(pa.string()), 1009),
    "oid[]": (pa.list_(pa.int64()), 1028), "int2[]": (pa.list_(pa.int16()), 1005),
    "char[]": (pa.list_(pa.string()), 1002), "int2vector": (pa.list_(pa.int16()), 22),
    "oidvector": (pa.list_(pa.int64()), 30), "anyarray": (pa.string(), 2277),
    "timestamptz": (pa.timestamp("us", tz="UTC"), T.TIMESTAMPTZ), "bytea": (pa.binary(), 17),
    "interval": (pa.duration("us"), T.INTERVAL), "name[]": (pa.list_(pa.string()), 1003),
}


def _cols(spec: str) -> list[tuple[str, str]]:
    out = []
    for part in spec.split(","):
        name, typ = part.split()
        out.append((name, typ))
    return out


# Postgres 16's columns, in order (those a client may name; a few internal ones are left out).
RELATIONS: dict[str, tuple[int, str]] = {
    "pg_namespace": (2615, "oid oid, nspname name, nspowner oid, nspacl aclitem[]"),
    "pg_class": (1259, "oid oid, relname name, relnamespace oid, reltype oid, reloftype oid, "
                 "relowner oid, relam oid, relfilenode oid, reltablespace oid, relpages int4, "
                 "reltuples float4, relallvisible int4, reltoastrelid oid, relhasindex bool, "
                 "relisshared bool, relpersistence char, relkind char, relnatts int2, "
                 "relchecks int2, relhasrules bool, relhastriggers bool, relhassubclass bool, "
                 "relrowsecurity bool, relforcerowsecurity bool, relispopulated bool, "
                 "relreplident char, relispartition bool, relrewrite oid, relfrozenxid xid, "
                 "relminmxid xid, relacl aclitem[], reloptions text[], relpartbound pg_node_tree"),
    "pg_attribute": (1249, "attrelid oid, attname name, atttypid oid, attlen int2, attnum int2, "
                     "attcacheoff int4, atttypmod int4, attndims int2, attbyval bool, "
                     "attalign char, attstorage char, attcompression char, attnotnull bool, "
                     "atthasdef bool, atthasmissing bool, attidentity char, attgenerated char, "
                     "attisdropped bool, attislocal bool, attinhcount int2, attstattarget int2, "
                     "attcollation oid, attacl aclitem[], attoptions text[], "
                     "attfdwoptions text[], attmissingval anyarray"),
    "pg_type": (1247, "oid oid, typname name, typnamespace oid, typowner oid, typlen int2, "
                "typbyval bool, typtype char, typcategory char, typispreferred bool, "
                "typisdefined bool, typdelim char, typrelid oid, typsubscript regproc, "
                "typelem oid, typarray oid, typinput regproc, typoutput regproc, "
                "typreceive regproc, typsend regproc, typmodin regproc, typmodout regproc, "
                "typanalyze regproc, typalign char, typstorage char, typnotnull bool, "
                "typbasetype oid, typtypmod int4, typndims int4, typcollation oid, "
                "typdefaultbin pg_node_tree, typdefault text, typacl aclitem[]"),
    "pg_database": (1262, "oid oid, datname name, datdba oid, encoding int4, "
                    "datlocprovider char, datistemplate bool, datallowconn bool, "
                    "datconnlimit int4, datfrozenxid xid, datminmxid xid, dattablespace oid, "
                    "datcollate text, datctype text, daticulocale text, daticurules text, "
                    "datcollversion text, datacl aclitem[]"),
    "pg_roles": (12000, "rolname name, rolsuper bool, rolinherit bool, rolcreaterole bool, "
                 "rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolconnlimit int4, "
                 "rolpassword text, rolvaliduntil timestamptz, rolbypassrls bool, "
                 "rolconfig text[], oid oid"),
    "pg_user": (12001, "usename name, usesysid oid, usecreatedb bool, usesuper bool, "
                "userepl bool, usebypassrls bool, passwd text, valuntil timestamptz, "
                "useconfig text[]"),
    "pg_authid": (1260, "oid oid, rolname name, rolsuper bool, rolinherit bool, "
                  "rolcreaterole bool, rolcreatedb bool, rolcanlogin bool, rolreplication bool, "
                  "rolbypassrls bool, rolconnlimit int4, rolpassword text, "
                  "rolvaliduntil timestamptz"),
    "pg_auth_members": (1261, "oid oid, roleid oid, member oid, grantor oid, admin_option bool, "
                        "inherit_option bool, set_option bool"),
    "pg_settings": (12002, "name text, setting text, unit text, category text, short_desc text, "
                    "extra_desc text, context text, vartype text, source text, min_val text, "
                    "max_val text, enumvals text[], boot_val text, reset_val text, "
                    "sourcefile text, sourceline int4, pending_restart bool"),
    "pg_description": (2609, "objoid oid, classoid oid, objsubid int4, description text"),
    "pg_shdescription": (2396, "objoid oid, classoid oid, description text"),
    "pg_am": (2601, "oid oid, amname name, amhandler regproc, amtype char"),
    "pg_tablespace": (1213, "oid oid, spcname name, spcowner oid, spcacl aclitem[], "
                      "spcoptions text[]"),
    "pg_language": (2612, "oid oid, lanname name, lanowner oid, lanispl bool, "
                    "lanpltrusted bool, lanplcallfoid oid, laninline oid, lanvalidator oid, "
                    "lanacl aclitem[]"),
    "pg_tables": (12003, "schemaname name, tablename name, tableowner name, tablespace name, "
                  "hasindexes bool, hasrules bool, hastriggers bool, rowsecurity bool"),
    "pg_timezone_names": (12004, "name text, abbrev text, utc_offset interval, is_dst bool"),
    # always empty
    "pg_proc": (1255, "oid oid, proname name, pronamespace oid, proowner oid, prolang oid, "
                "procost float4, prorows float4, provariadic oid, prosupport regproc, "
                "prokind char, prosecdef bool, proleakproof bool, proisstrict bool, "
                "proretset bool, provolatile char, proparallel char, pronargs int2, "
                "pronargdefaults int2, prorettype oid, proargtypes oidvector, "
                "proallargtypes oid[], proargmodes char[], proargnames text[], "
                "proargdefaults pg_node_tree, protrftypes oid[], prosrc text, probin text, "
                "prosqlbody pg_node_tree, proconfig text[], proacl aclitem[]"),
    "pg_index": (2610, "indexrelid oid, indrelid oid, indnatts int2, indnkeyatts int2, "
                 "indisunique bool, indnullsnotdistinct bool, indisprimary bool, "
                 "indisexclusion bool, indimmediate bool, indisclustered bool, "
                 "indisvalid bool, indcheckxmin bool, indisready bool, indislive bool, "
                 "indisreplident bool, indkey int2vector, indcollation oidvector, "
                 "indclass oidvector, indoption int2vector, indexprs pg_node_tree, "
                 "indpred pg_node_tree"),
    "pg_constraint": (2606, "oid oid, conname name, connamespace oid, contype char, "
                      "condeferrable bool, condeferred bool, convalidated bool, conrelid oid, "
                      "contypid oid, conindid oid, conparentid oid, confrelid oid, "
                      "confupdtype char, confdeltype char, confmatchtype char, "
                      "conislocal bool, coninhcount int2, connoinherit bool, conkey int2[], "
                      "confkey int2[], conpfeqop oid[], conppeqop oid[], conffeqop oid[], "
                      "confdelsetcols int2[], conexclop oid[], conbin pg_node_tree"),
    "pg_attrdef": (2604, "oid oid, adrelid oid, adnum int2, adbin pg_node_tree"),
    "pg_inherits": (2611, "inhrelid oid, inhparent oid, inhseqno int4, inhdetachpending bool"),
    "pg_collation": (3456, "oid oid, collname name, collnamespace oid, collowner oid, "
                     "collprovider char, collisdeterministic bool, collencoding int4, "
                     "collcollate text, collctype text, colliculocale text, "
                     "collicurules text, collversion text"),
    "pg_sequence": (2224, "seqrelid oid, seqtypid oid, seqstart int8, seqincrement int8, "
                    "seqmax int8, seqmin int8, seqcache int8, seqcycle bool"),
    "pg_enum": (3501, "oid oid, enumtypid oid, enumsortorder float4, enumlabel name"),
    "pg_range": (3541, "rngtypid oid, rngsubtype oid, rngmultitypid oid, rngcollation oid, "
                 "rngsubopc oid, rngcanonical regproc, rngsubdiff regproc"),
    "pg_trigger": (2620, "oid oid, tgrelid oid, tgparentid oid, tgname name, tgfoid oid, "
                   "tgtype int2, tgenabled char, tgisinternal bool, tgconstrrelid oid, "
                   "tgconstrindid oid, tgconstraint oid, tgdeferrable bool, "
                   "tginitdeferred bool, tgnargs int2, tgattr int2vector, tgargs bytea, "
                   "tgqual pg_node_tree, tgoldtable name, tgnewtable name"),
    "pg_rewrite": (2618, "oid oid, rulename name, ev_class oid, ev_type char, ev_enabled char, "
                   "is_instead bool, ev_qual pg_node_tree, ev_action pg_node_tree"),
    "pg_depend": (2608, "classid oid, objid oid, objsubid int4, refclassid oid, refobjid oid, "
                  "refobjsubid int4, deptype char"),
    "pg_extension": (3079, "oid oid, extname name, extowner oid, extnamespace oid, "
                     "extrelocatable bool, extversion text, extconfig oid[], "
                     "extcondition text[]"),
    "pg_foreign_table": (3118, "ftrelid oid, ftserver oid, ftoptions text[]"),
    "pg_foreign_server": (1417, "oid oid, srvname name, srvowner oid, srvfdw oid, "
                          "srvtype text, srvversion text, srvacl aclitem[], srvoptions text[]"),
    "pg_foreign_data_wrapper": (2328, "oid oid, fdwname name, fdwowner oid, fdwhandler oid, "
                                "fdwvalidator oid, fdwacl aclitem[], fdwoptions text[]"),
    "pg_partitioned_table": (3350, "partrelid oid, partstrat char, partnatts int2, "
                             "partdefid oid, partattrs int2vector, partclass oidvector, "
                             "partcollation oidvector, partexprs pg_node_tree"),
    "pg_policy": (3256, "oid oid, polname name, polrelid oid, polcmd char, polpermissive bool, "
                  "polroles oid[], polqual pg_node_tree, polwithcheck pg_node_tree"),
    "pg_statistic_ext": (3381, "oid oid, stxrelid oid, stxname name, stxnamespace oid, "
                         "stxowner oid, stxstattarget int4, stxkeys int2vector, "
                         "stxkind char[], stxexprs pg_node_tree"),
    "pg_publication": (6104, "oid oid, pubname name, pubowner oid, puballtables bool, "
                       "pubinsert bool, pubupdate bool, pubdelete bool, pubtruncate bool, "
                       "pubviaroot bool"),
    "pg_publication_rel": (6106, "oid oid, prpubid oid, prrelid oid, prqual pg_node_tree, "
                           "prattrs int2vector"),
    "pg_publication_namespace": (6237, "oid oid, pnpubid oid, pnnspid oid"),
    "pg_subscription": (6100, "oid oid, subdbid oid, subname name, subowner oid, "
                        "subenabled bool"),
    "pg_event_trigger": (3466, "oid oid, evtname name, evtevent name, evtowner oid, "
                         "evtfoid oid, evtenabled char, evttags text[]"),
    "pg_cast": (2605, "oid oid, castsource oid, casttarget oid, castfunc oid, "
                "castcontext char, castmethod char"),
    "pg_operator": (2617, "oid oid, oprname name, oprnamespace oid, oprowner oid, "
                    "oprkind char, oprcanmerge bool, oprcanhash bool, oprleft oid, "
                    "oprright oid, oprresult oid, oprcom oid, oprnegate oid, oprcode regproc, "
                    "oprrest regproc, oprjoin regproc"),
    "pg_opclass": (2616, "oid oid, opcmethod oid, opcname name, opcnamespace oid, "
                   "opcowner oid, opcfamily oid, opcintype oid, opcdefault bool, "
                   "opckeytype oid"),
    "pg_aggregate": (2600, "aggfnoid regproc, aggkind char, aggnumdirectargs int2, "
                     "aggtransfn regproc, aggfinalfn regproc, aggtranstype oid"),
    "pg_conversion": (2607, "oid oid, conname name, connamespace oid, conowner oid, "
                      "conforencoding int4, contoencoding int4, conproc regproc, "
                      "condefault bool"),
    "pg_views": (12005, "schemaname name, viewname name, viewowner name, definition text"),
    "pg_matviews": (12006, "schemaname name, matviewname name, matviewowner name, "
                    "tablespace name, hasindexes bool, ispopulated bool, definition text"),
    "pg_indexes": (12007, "schemaname name, tablename name, indexname name, tablespace name, "
                   "indexdef text"),
    "pg_sequences": (12008, "schemaname name, sequencename name, sequenceowner name, "
                     "data_type text, start_value int8, min_value int8, max_value int8, "
                     "increment_by int8, cycle bool, cache_size int8, last_value int8"),
    "pg_stat_activity": (12009, "datid oid, datname name, pid int4, leader_pid int4, "
                         "usesysid oid, usename name, application_name text, "
                         "client_addr text, client_hostname text, client_port int4, "
                         "backend_start timestamptz, xact_start timestamptz, "
                         "query_start timestamptz, state_change timestamptz, "
                         "wait_event_type text, wait_event text, state text, "
                         "backend_xid xid, backend_xmin xid, query_id int8, query text, "
                         "backend_type text"),
    "pg_locks": (12010, "locktype text, database oid, relation oid, pid int4, mode text, "
                 "granted bool"),
}
INFO_SCHEMA: dict[str, str] = {
    "schemata": "catalog_name text, schema_name text, schema_owner text, "
                "default_character_set_catalog text, default_character_set_schema text, "
                "default_character_set_name text, sql_path text",
    "tables": "table_catalog text, table_schema text, table_name text, table_type text, "
              "self_referencing_column_name text, reference_generation text, "
              "user_defined_type_catalog text, user_defined_type_schema text, "
              "user_defined_type_name text, is_insertable_into text, is_typed text, "
              "commit_action text",
    "columns": "table_catalog text, table_schema text, table_name text, column_name text, "
               "ordinal_position int4, column_default text, is_nullable text, data_type text, "
               "character_maximum_length int4, character_octet_length int4, "
               "numeric_precision int4, numeric_precision_radix int4, numeric_scale int4, "
               "datetime_precision int4, interval_type text, udt_catalog text, "
               "udt_schema text, udt_name text, dtd_identifier text, is_identity text, "
               "is_generated text, generation_expression text, is_updatable text",
    "views": "table_catalog text, table_schema text, table_name text, view_definition text, "
             "check_option text, is_updatable text, is_insertable_into text",
    "table_constraints": "constraint_catalog text, constraint_schema text, "
                         "constraint_name text, table_catalog text, table_schema text, "
                         "table_name text, constraint_type text, is_deferrable text, "
                         "initially_deferred text, enforced text, nulls_distinct text",
    "key_column_usage": "constraint_catalog text, constraint_schema text, "
                        "constraint_name text, table_catalog text, table_schema text, "
                        "table_name text, column_name text, ordinal_position int4, "
                        "position_in_unique_constraint int4",
    "referential_constraints": "constraint_catalog text, constraint_schema text, "
                               "constraint_name text, unique_constraint_catalog text, "
                               "unique_constraint_schema text, unique_constraint_name text, "
                               "match_option text, update_rule text, delete_rule text",
    "constraint_column_usage": "table_catalog text, table_schema text, table_name text, "
                               "column_name text, constraint_catalog text, "
                               "constraint_schema text, constraint_name text",
    "routines": "specific_catalog text, specific_schema text, specific_name text, "
                "routine_catalog text, routine_schema text, routine_name text, "
                "routine_type text, data_type text",
    "parameters": "specific_catalog text, specific_schema text, specific_name text, "
                  "ordinal_position int4, parameter_mode text, parameter_name text, "
                  "data_type text",
    "character_sets": "character_set_catalog text, character_set_schema text, "
                      "character_set_name text, character_repertoire text, form_of_use text, "
                      "default_collate_catalog text, default_collate_schema text, "
                      "default_collate_name text",
}


def schema_of(spec: str) -> pa.Schema:
    return pa.schema([T.pg_field(n, *_COLUMN_TYPES[t]) for n, t in _cols(spec)])


@dataclass
class Model:
    """What the catalogs describe: the served tables with their OIDs, and the settings."""

    tables: list[tuple[int, TableDef]]
    database: str
    settings: Mapping[str, str]
    started: dt.datetime

    def relations(self) -> list[tuple[int, int, str, pa.Schema, str]]:
        """(oid, namespace, name, schema, doc) of every relation pg_class lists."""
        out = [(oid, PUBLIC, t.name, t.schema, t.doc) for oid, t in self.tables]
        out += [(oid, PG_CATALOG, name, schema_of(spec), "")
                for name, (oid, spec) in RELATIONS.items()]
        out += [(13100 + i, INFORMATION_SCHEMA, name, schema_of(spec), "")
                for i, (name, spec) in enumerate(INFO_SCHEMA.items())]
        return out


def typmod(t: pa.DataType) -> int:
    if pa.types.is_decimal(t):
        return ((int(t.precision) << 16) | int(t.scale)) + 4
    if pa.types.is_uint64(t):
        return (20 << 16) + 4
    return -1


def format_type(oid: int, typmod: int | None = None) -> str:
    name = T.format_type(oid)
    if oid == T.NUMERIC and typmod is not None and typmod >= 4:
        return f"numeric({(typmod - 4) >> 16},{(typmod - 4) & 0xFFFF})"
    if oid in (T.VARCHAR, 1042) and typmod is not None and typmod >= 4:
        return f"{name}({typmod - 4})"
    return name


def _is_textual(oid: int) -> bool:
    return oid in (T.TEXT, T.VARCHAR, T.NAME, 1042, T.CHAR)


def build(model: Model) -> dict[str, pa.Table]:
    """Every catalog relation's rows, by qualified name (`pg_catalog.x`, `information_schema.x`)."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in RELATIONS}
    for nsp_oid, nsp_name in NAMESPACES.items():
        rows["pg_namespace"].append({"oid": nsp_oid, "nspname": nsp_name,
                                     "nspowner": OWNER_OID})
    rows["pg_description"] += [{"objoid": PUBLIC, "classoid": 2615, "objsubid": 0,
                                "description": "standard public schema"}]
    for oid, nsp, name, schema, doc in model.relations():
        rows["pg_class"].append({
            "oid": oid, "relname": name, "relnamespace": nsp, "reltype": 0, "reloftype": 0,
            "relowner": OWNER_OID, "relam": 2, "relfilenode": oid, "reltablespace": 0,
            "relpages": 0, "reltuples": -1.0, "relallvisible": 0, "reltoastrelid": 0,
            "relhasindex": False, "relisshared": False, "relpersistence": "p",
            "relkind": "r" if nsp != INFORMATION_SCHEMA else "v", "relnatts": len(schema),
            "relchecks": 0, "relhasrules": False, "relhastriggers": False,
            "relhassubclass": False, "relrowsecurity": False, "relforcerowsecurity": False,
            "relispopulated": True, "relreplident": "n", "relispartition": False,
            "relrewrite": 0, "relfrozenxid": 0, "relminmxid": 0})
        if doc:
            rows["pg_description"].append({"objoid": oid, "classoid": PG_CLASS_OID,
                                           "objsubid": 0, "description": doc})
        if nsp != INFORMATION_SCHEMA:
            rows["pg_tables"].append({
                "schemaname": NAMESPACES[nsp], "tablename": name, "tableowner": OWNER,
                "hasindexes": False, "hasrules": False, "hastriggers": False,
                "rowsecurity": False})
        for num, f in enumerate(schema, start=1):
            toid = field_type(f)
            pt = T.TYPES.get(toid)
            rows["pg_attribute"].append({
                "attrelid": oid, "attname": f.name, "atttypid": toid,
                "attlen": pt.length if pt else -1, "attnum": num, "attcacheoff": -1,
                "atttypmod": typmod(f.type), "attndims": 1 if pt is not None and pt.elem else 0,
                "attbyval": pt is not None and pt.length in (1, 2, 4, 8),
                "attalign": "d" if pt is not None and pt.length == 8 else "i",
                "attstorage": "p" if pt is not None and pt.length > 0 else "x",
                "attcompression": "", "attnotnull": not f.nullable, "atthasdef": False,
                "atthasmissing": False, "attidentity": "", "attgenerated": "",
                "attisdropped": False, "attislocal": True, "attinhcount": 0,
                "attstattarget": -1,
                "attcollation": TEXT_COLLATION if _is_textual(toid) else 0})
        for num, c in enumerate(_docs(model, oid), start=1):
            if c:
                rows["pg_description"].append({"objoid": oid, "classoid": PG_CLASS_OID,
                                               "objsubid": num, "description": c})
    for t in sorted(T.TYPES.values(), key=lambda t: t.oid):
        base = f"{t.name}in" if not t.elem else "array_in"
        rows["pg_type"].append({
            "oid": t.oid, "typname": t.name, "typnamespace": PG_CATALOG,
            "typowner": OWNER_OID, "typlen": t.length, "typbyval": t.length in (1, 2, 4, 8),
            "typtype": "p" if t.category in ("P", "X") else "b", "typcategory": t.category,
            "typispreferred": t.oid in (T.TEXT, T.FLOAT8, T.TIMESTAMPTZ, T.BOOL, T.OID),
            "typisdefined": True, "typdelim": t.delim, "typrelid": 0,
            "typsubscript": "array_subscript_handler" if t.elem else "-", "typelem": t.elem,
            "typarray": t.array_oid, "typinput": base,
            "typoutput": base[:-2] + "out", "typreceive": base[:-2] + "recv",
            "typsend": base[:-2] + "send", "typmodin": "-", "typmodout": "-",
            "typanalyze": "-", "typalign": "d" if t.length == 8 else "i",
            "typstorage": "p" if t.length > 0 else "x", "typnotnull": False, "typbasetype": 0,
            "typtypmod": -1, "typndims": 0,
            "typcollation": TEXT_COLLATION if _is_textual(t.oid) else 0})
    rows["pg_database"].append({
        "oid": DATABASE_OID, "datname": model.database, "datdba": OWNER_OID, "encoding": 6,
        "datlocprovider": "c", "datistemplate": False, "datallowconn": True,
        "datconnlimit": -1, "datfrozenxid": 0, "datminmxid": 1, "dattablespace": 1663,
        "datcollate": "C", "datctype": "C"})
    role = {"rolname": OWNER, "rolsuper": False, "rolinherit": True, "rolcreaterole": False,
            "rolcreatedb": False, "rolcanlogin": True, "rolreplication": False,
            "rolconnlimit": -1, "rolpassword": "********", "rolbypassrls": False,
            "oid": OWNER_OID}
    rows["pg_roles"].append(role)
    rows["pg_authid"].append({**role, "rolpassword": None})
    rows["pg_user"].append({"usename": OWNER, "usesysid": OWNER_OID, "usecreatedb": False,
                            "usesuper": False, "userepl": False, "usebypassrls": False,
                            "passwd": "********"})
    for name, value in sorted(model.settings.items()):
        if not name.startswith("__"):
            rows["pg_settings"].append({
                "name": name, "setting": value, "category": "rstq", "short_desc": "",
                "context": "user", "vartype": "string", "source": "default",
                "boot_val": value, "reset_val": value, "pending_restart": False})
    rows["pg_am"] += [{"oid": 2, "amname": "arrow", "amhandler": "-", "amtype": "t"}]
    rows["pg_tablespace"] += [{"oid": 1663, "spcname": "pg_default", "spcowner": OWNER_OID},
                              {"oid": 1664, "spcname": "pg_global", "spcowner": OWNER_OID}]
    rows["pg_language"] += [
        {"oid": o, "lanname": n, "lanowner": OWNER_OID, "lanispl": False,
         "lanpltrusted": n != "c", "lanplcallfoid": 0, "laninline": 0, "lanvalidator": 0}
        for o, n in ((12, "internal"), (13, "c"), (14, "sql"))]
    rows["pg_timezone_names"].append({"name": "UTC", "abbrev": "UTC",
                                      "utc_offset": dt.timedelta(0), "is_dst": False})
    out = {f"pg_catalog.{name}": pa.Table.from_pylist(r, schema=schema_of(RELATIONS[name][1]))
           for name, r in rows.items()}
    out.update({f"information_schema.{k}": v for k, v in _information_schema(model).items()})
    return out


def field_type(f: pa.Field[Any]) -> int:
    meta = f.metadata
    if meta and T.PG_OID_KEY in meta:
        return int(meta[T.PG_OID_KEY])
    return T.pg_type_of(f.type)


def _docs(model: Model, oid: int) -> list[str]:
    for o, t in model.tables:
        if o == oid:
            return [c.doc for c in t.columns]
    return []


def _information_schema(model: Model) -> dict[str, pa.Table]:
    db = model.database
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in INFO_SCHEMA}
    for nsp_name in NAMESPACES.values():
        rows["schemata"].append({"catalog_name": db, "schema_name": nsp_name,
                                 "schema_owner": OWNER})
    for _oid, nsp, name, schema, _doc in model.relations():
        kind = "VIEW" if nsp == INFORMATION_SCHEMA else "BASE TABLE"
        rows["tables"].append({"table_catalog": db, "table_schema": NAMESPACES[nsp],
                               "table_name": name, "table_type": kind,
                               "is_insertable_into": "NO", "is_typed": "NO"})
        for pos, f in enumerate(schema, start=1):
            toid = field_type(f)
            pt = T.TYPES.get(toid)
            data_type = "ARRAY" if pt is not None and pt.elem else T.format_type(toid)
            num = f.type if pa.types.is_decimal(f.type) else None
            rows["columns"].append({
                "table_catalog": db, "table_schema": NAMESPACES[nsp], "table_name": name,
                "column_name": f.name, "ordinal_position": pos,
                "is_nullable": "YES" if f.nullable else "NO", "data_type": data_type,
                "numeric_precision": num.precision if num is not None else None,
                "numeric_scale": num.scale if num is not None else None,
                "udt_catalog": db, "udt_schema": "pg_catalog",
                "udt_name": pt.name if pt else "unknown", "dtd_identifier": str(pos),
                "is_identity": "NO", "is_generated": "NEVER", "is_updatable": "NO"})
    return {k: pa.Table.from_pylist(r, schema=schema_of(INFO_SCHEMA[k])) for k, r in rows.items()}


# --- functions -----------------------------------------------------------------------------------


def _pretty_size(v: str) -> str:
    n = float(v)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 10240 or unit == "TB":
            return f"{int(round(n))} {unit}"
        n /= 1024
    return f"{int(n)} TB"


def _quote_ident(s: str) -> str:
    if s.isidentifier() and s == s.lower() and s.upper() not in R._KEYWORDS:
        return s
    return '"' + s.replace('"', '""') + '"'


_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "CREATE",
                     "REFERENCES", "MAINTAIN", "TEMP")


def _privilege(*args: str | None) -> bool | None:
    priv = args[-1]
    if priv is None:
        return None
    return not any(w in priv.upper() for w in _WRITE_PRIVILEGES)


class Functions:
    """The catalog functions over one `Model` (lookups by OID and name)."""

    def __init__(self, model: Model, tables: Mapping[str, pa.Table]) -> None:
        self.model = model
        cls = tables["pg_catalog.pg_class"]
        oids: list[Any] = cls["oid"].to_pylist()
        names: list[Any] = cls["relname"].to_pylist()
        nsps: list[Any] = cls["relnamespace"].to_pylist()
        self.class_name: dict[int, str] = dict(zip(oids, names, strict=True))
        self.class_nsp: dict[int, int] = dict(zip(oids, nsps, strict=True))
        self.class_oid: dict[str, int] = {}
        for oid, name in self.class_name.items():
            nsp = NAMESPACES[self.class_nsp[oid]]
            self.class_oid.setdefault(name, oid)
            self.class_oid[f"{nsp}.{name}"] = oid
        d = tables["pg_catalog.pg_description"]
        self.descriptions = {(o, s): text for o, s, text in zip(
            d["objoid"].to_pylist(), d["objsubid"].to_pylist(), d["description"].to_pylist(),
            strict=True)}

    def reg_oid(self, kind: str | None, v: str | None) -> int | None:
        if kind is None or v is None:
            return None
        v = v.strip()
        if v.lstrip("-").isdigit():
            return int(v)
        name = _unquote(v)
        if kind == "class":
            return self.class_oid.get(name) or self.class_oid.get(name.lower())
        if kind == "type":
            low = name.lower().removeprefix("pg_catalog.")
            array = low.endswith("[]")
            oid = T.TYPE_BY_NAME.get(low.removesuffix("[]").strip().strip('"'))
            if oid is None:
                return None
            return T.TYPES[oid].array_oid if array else oid
        if kind == "namespace":
            return {v: k for k, v in NAMESPACES.items()}.get(name)
        if kind == "role":
            return OWNER_OID if name == OWNER else None
        return None

    def reg_name(self, kind: str | None, v: str | None) -> str | None:
        if kind is None or v is None:
            return None
        v = v.strip()
        if not v.lstrip("-").isdigit():
            oid = self.reg_oid(kind, v)
            if oid is None:
                return v
        else:
            oid = int(v)
        if oid == 0:
            return "-"
        if kind == "class":
            name = self.class_name.get(oid)
            return _quote_ident(name) if name is not None else str(oid)
        if kind == "type":
            return T.format_type(oid) if oid in T.TYPES else str(oid)
        if kind == "namespace":
            return NAMESPACES.get(oid, str(oid))
        if kind == "role":
            return OWNER if oid == OWNER_OID else str(oid)
        return str(oid)

    def table_is_visible(self, v: str | None) -> bool | None:
        if v is None:
            return None
        return self.class_nsp.get(int(v)) in (PG_CATALOG, PUBLIC)

    def description(self, oid: str | None, sub: str | None = "0") -> str | None:
        if oid is None or sub is None:
            return None
        return self.descriptions.get((int(oid), int(sub)))

    def all(self) -> dict[str, tuple[Sequence[int], pa.DataType, Callable[..., Any]]]:
        """name -> (arities, return type, implementation over text arguments)."""
        s, b, i = pa.string(), pa.bool_(), pa.int64()

        def none(*_: Any) -> None:
            return None

        def true(*_: Any) -> bool:
            return True

        def false(*_: Any) -> bool:
            return False

        fns: dict[str, tuple[Sequence[int], pa.DataType, Callable[..., Any]]] = {
            "format_type": ((1, 2), s, lambda o, m=None: None if o is None else format_type(
                int(o), int(m) if m is not None else None)),
            "pg_get_userbyid": ((1,), s, lambda o: None if o is None else (
                OWNER if int(o) == OWNER_OID else f"unknown (OID={o})")),
            "pg_encoding_to_char": ((1,), s, lambda e: None if e is None else (
                "UTF8" if e == "6" else "SQL_ASCII")),
            "pg_table_is_visible": ((1,), b, self.table_is_visible),
            "obj_description": ((1, 2), s, lambda o, _c=None: self.description(o)),
            "col_description": ((2,), s, self.description),
            "shobj_description": ((2,), s, lambda o, _c=None: (
                "rstq state (read-only)" if o == str(DATABASE_OID) else None)),
            "pg_size_pretty": ((1,), s, lambda v: None if v is None else _pretty_size(v)),
            "quote_ident": ((1,), s, lambda v: None if v is None else _quote_ident(v)),
            "pg_is_other_temp_schema": ((1,), b, false),
            "reg_oid": ((2,), i, self.reg_oid),
            "reg_name": ((2,), s, self.reg_name),
        }
        for kind in ("type", "class", "namespace", "role", "proc", "procedure", "oper",
                     "operator", "collation"):
            k = {"procedure": "proc", "operator": "oper"}.get(kind, kind)
            fns[f"to_reg{kind}"] = ((1,), i, lambda v, k=k: self.reg_oid(k, v))
        for name in ("pg_type_is_visible", "pg_function_is_visible", "pg_opclass_is_visible",
                     "pg_operator_is_visible", "pg_collation_is_visible",
                     "pg_conversion_is_visible", "pg_statistics_obj_is_visible",
                     "pg_ts_config_is_visible", "pg_opfamily_is_visible"):
            fns[name] = ((1,), b, true)
        for name in ("has_table_privilege", "has_schema_privilege", "has_database_privilege",
                     "has_column_privilege", "has_any_column_privilege",
                     "has_sequence_privilege", "has_function_privilege",
                     "has_type_privilege", "has_language_privilege",
                     "has_tablespace_privilege", "has_foreign_data_wrapper_privilege",
                     "has_server_privilege"):
            fns[name] = ((2, 3, 4), b, _privilege)
        fns["pg_has_role"] = ((2, 3), b, true)
        for name in ("pg_get_expr", "pg_get_indexdef", "pg_get_constraintdef",
                     "pg_get_viewdef", "pg_get_triggerdef", "pg_get_ruledef",
                     "pg_get_functiondef", "pg_get_function_arguments",
                     "pg_get_function_result", "pg_get_function_identity_arguments",
                     "pg_get_serial_sequence", "pg_get_partkeydef",
                     "pg_get_partition_constraintdef", "pg_get_statisticsobjdef_columns",
                     "pg_tablespace_location", "pg_get_statisticsobjdef"):
            fns[name] = ((1, 2, 3), s, none)
        for name in ("pg_relation_size", "pg_total_relation_size", "pg_table_size",
                     "pg_indexes_size", "pg_database_size", "pg_tablespace_size"):
            fns[name] = ((1, 2), i, none)
        return fns


def _unquote(v: str) -> str:
    parts = []
    for p in v.split("."):
        p = p.strip()
        parts.append(p[1:-1].replace('""', '"') if p.startswith('"') and p.endswith('"')
                     else p.lower())
    if len(parts) == 2 and parts[0] in ("public", "pg_catalog"):
        return f"{parts[0]}.{parts[1]}"
    return ".".join(parts)


def _udf(name: str, arity: int, ret: pa.DataType, fn: Callable[..., Any]) -> Any:
    def run(*arrays: pa.Array[Any]) -> pa.Array[Any]:
        cols = [a.to_pylist() for a in arrays]
        return pa.array([fn(*row) for row in zip(*cols, strict=True)], ret)

    return udf(run, [pa.string()] * arity, ret, "stable", f"{name}__{arity}")


def constants(model: Model) -> dict[str, str]:
    """Zero-argument functions, as SQL."""
    started = model.started.strftime("%Y-%m-%d %H:%M:%S")
    return {"pg_postmaster_start_time": f"CAST('{started}' AS TIMESTAMP)",
            "pg_conf_load_time": f"CAST('{started}' AS TIMESTAMP)",
            "txid_current": "CAST(1 AS BIGINT)", "pg_current_xact_id": "CAST(1 AS BIGINT)",
            "pg_my_temp_schema": "CAST(0 AS BIGINT)", "pg_jit_available": "false",
            "pg_trigger_depth": "0", "inet_server_addr": "CAST(NULL AS VARCHAR)",
            "inet_server_port": "CAST(NULL AS INT)", "inet_client_addr": "CAST(NULL AS VARCHAR)",
            "inet_client_port": "CAST(NULL AS INT)",
            "pg_is_in_backup": "false"}


class CatalogSession:
    """A DataFusion session over the catalogs of one `Model`; `sql()` from any thread."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.tables = build(model)
        self.functions = Functions(model, self.tables)
        self.ctx = SessionContext(SessionConfig().with_information_schema(False))
        self.ctx.sql("CREATE SCHEMA information_schema").collect()
        for qname, table in self.tables.items():
            name = qname.split(".", 1)[1]
            batches = table.to_batches() or [pa.RecordBatch.from_pylist([],
                                                                        schema=table.schema)]
            if qname.startswith("pg_catalog."):
                self.ctx.register_record_batches(name, [batches])
            else:
                self.ctx.register_record_batches(qname, [batches])
        fns = self.functions.all()
        for name, (arities, ret, impl) in fns.items():
            for n in arities:
                self.ctx.register_udf(_udf(name, n, ret, impl))
        self.empty = {q.split(".", 1)[1] for q, t in self.tables.items()
                      if t.num_rows == 0 and q.startswith("pg_catalog.")}
        self.rewrite_ctx = R.Context(functions=set(fns), empty=self.empty,
                                     constants=constants(model))
        self.names = {q.split(".", 1)[1] for q in self.tables if q.startswith("pg_catalog.")}
        self.served = {t.name for _oid, t in model.tables}
        self._lock = threading.Lock()

    def reads_catalog(self, sql: str) -> bool:
        """Whether `sql` names a catalog relation or function (then this session runs it)."""
        low = sql.lower()
        if "pg_" not in low and "information_schema" not in low and "reg" not in low \
                and "privilege" not in low and "_description" not in low and \
                "format_type" not in low and "quote_ident" not in low:
            return False
        try:
            items = R.tokenize(sql)
        except R.RewriteError:
            return False
        relations, functions = _mentions(items, self.names, set(self.rewrite_ctx.functions)
                                         | set(self.rewrite_ctx.constants), self.served)
        return relations or functions

    def sql(self, sql: str, params: Sequence[object]) -> pa.Table:
        try:
            text = R.rewrite(sql, self.rewrite_ctx)
        except R.RewriteError as e:
            raise QueryError(f"cannot read this catalog query: {e}", "0A000") from e
        values = {str(i + 1): v for i, v in enumerate(params)} or None
        with self._lock:
            try:
                table = self.ctx.sql(text, param_values=values).to_arrow_table()
            except Exception as e:
                empty = self._empty_answer(sql)
                if empty is not None:
                    return empty
                raise _error(e, self.names) from None
        names = R.postgres_names(sql)
        if names is None or len(names) != table.num_columns:
            names = [R.restore_name(n) for n in table.column_names]
        return table.rename_columns(names)

    def _empty_answer(self, sql: str) -> pa.Table | None:
        """A query whose FROM reads only always-empty catalogs (inner and left joins on
        them) has no rows, whatever DataFusion makes of the rest."""
        try:
            items = R.strip_qualifiers(R.tokenize(sql))
        except R.RewriteError:
            return None
        if items and R.is_word(items[0], "WITH") or not R.reads_nothing(items, self.empty):
            return None
        names = R.select_names(items)
        if names is None:
            return None
        return pa.table({f"c{i}": pa.array([], pa.string()) for i in range(len(names))}
                        ).rename_columns(names)


def _mentions(items: Sequence[R.Item], relations: set[str], functions: set[str],
              served: set[str]) -> tuple[bool, bool]:
    """(names a catalog relation, uses a catalog function and names no served table)."""
    rel = fn = user = False

    def walk(level: Sequence[R.Item]) -> None:
        nonlocal rel, fn, user
        for k, it in enumerate(level):
            if isinstance(it, R.Group):
                walk(it.items)
                continue
            nxt = level[k + 1] if k + 1 < len(level) else None
            if it.kind not in ("ident", "qident"):
                continue
            low = it.text.lower() if it.kind == "ident" else it.text.strip('"')
            if low in ("pg_catalog", "information_schema") and R.is_punct(nxt, "."):
                rel = True
            elif low in relations:
                rel = True
            elif low in served:
                user = True
            elif low in functions and isinstance(nxt, R.Group):
                fn = True
            elif low in R.REG_KINDS and k > 0 and R.is_punct(level[k - 1], "::"):
                fn = True

    walk(items)
    return rel, fn and not user


def _error(e: Exception, names: Iterable[str]) -> QueryError:
    return query_error(e, names)

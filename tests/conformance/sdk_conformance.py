#!/usr/bin/env python3
"""Drives the real filesync-dropbox-emulator with the official Dropbox Python SDK.

The SDK's Stone deserializers reject responses whose shape differs from the spec (missing
required fields, wrong types, unknown struct layouts), so this catches emulator errors that the
C++ tests, written by the same hands as the emulator, can miss. Expected values come from
shared/reference/dropbox-api.md, not from what the emulator happens to answer.

Usage: sdk_conformance.py --emulator PATH [unittest args]
Exit 77 (ctest SKIP_RETURN_CODE) when the SDK or the openssl CLI is missing.
"""

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import unittest
import urllib.request
import warnings
from datetime import datetime, timedelta

SKIP = 77
TOKEN = "conformance-static-token"
APP_KEY = "conformance-app-key"
APP_SECRET = "conformance-app-secret"
REFRESH_TOKEN = "conformance-refresh-token"
TOKEN_LIFETIME_S = 2
LONGPOLL_MAX_S = 2
WRITE_LOCK_MS = 2400  # --commit-lock-ms of the write-lock probe's emulator
BLOCK = 4 * 1024 * 1024

dropbox = None  # imported in main() once the host variables point at the emulator
CTX = {}  # cert, emulator path, work dir, main emulator


def content_hash(data):
    """Reference §12: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks."""
    overall = hashlib.sha256()
    for start in range(0, len(data), BLOCK):
        overall.update(hashlib.sha256(data[start:start + BLOCK]).digest())
    return overall.hexdigest()


STRICT_VIOLATIONS = []


def decode_strictly(sdk):
    """Makes every SDK decode also run in strict mode (unknown fields and tags are errors).

    The SDK decodes leniently (strict=False), which hides extra fields and, in open unions,
    maps a misspelt tag to `other`. The lenient result is still returned so the tests go on;
    main() fails the run if any strict decode failed.
    """
    serializers = sdk.dropbox_client.stone_serializers
    lenient = serializers.json_compat_obj_decode

    def decode(data_type, obj, *args, **kwargs):
        strict_kwargs = dict(kwargs, strict=True)
        try:
            lenient(data_type, obj, *args, **strict_kwargs)
        except Exception as e:  # a ValidationError, or anything the strict decoder trips on
            STRICT_VIOLATIONS.append("%s: %s\n    in %s" % (
                getattr(data_type, "definition", data_type), e, json.dumps(obj)[:600]))
        return lenient(data_type, obj, *args, **kwargs)

    serializers.json_compat_obj_decode = decode


class Emulator:
    """One emulator process on 127.0.0.1 with TLS; stop() reports a non-zero exit."""

    def __init__(self, name, extra_args):
        self.dir = os.path.join(CTX["work"], name)
        os.makedirs(self.dir)
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        args = [CTX["emulator"], "--listen", "127.0.0.1:0", "--data",
                os.path.join(self.dir, "data"), "--token", TOKEN,
                "--tls-cert", CTX["cert"], "--tls-key", CTX["key"]] + extra_args
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err)
        deadline = time.monotonic() + 30  # sanitizer builds start slowly
        line = ""
        while time.monotonic() < deadline:
            with open(self.stdout_path, encoding="utf-8") as f:
                line = f.readline()
            if line.endswith("\n") or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        prefix = "listening on https://"
        if not line.startswith(prefix):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("emulator %s did not start: %r\n%s" % (name, line, self.stderr()))
        self.hostport = line[len(prefix):].strip()

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def admin(self, method, path):
        ctx = ssl.create_default_context(cafile=CTX["cert"])
        req = urllib.request.Request("https://%s%s" % (self.hostport, path), method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stop(self):
        """SIGTERM and wait; returns an error text unless the exit was clean (code 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "emulator did not stop on SIGTERM\n" + self.stderr()
        if self.proc.returncode != 0:
            return "emulator exited with %d\n%s" % (self.proc.returncode, self.stderr())
        return None


class SdkTestCase(unittest.TestCase):
    """Each test works under its own top-level folder, named after the test."""

    def setUp(self):
        self.clients = []
        self.dbx = self.client()
        self.root = "/" + self.id().rsplit(".", 1)[-1]

    def tearDown(self):
        for dbx in self.clients:
            dbx.close()

    def client(self, **kwargs):
        if "oauth2_refresh_token" not in kwargs:
            kwargs.setdefault("oauth2_access_token", TOKEN)
        dbx = dropbox.Dropbox(ca_certs=CTX["cert"], timeout=30, **kwargs)
        self.clients.append(dbx)
        return dbx

    def p(self, rel):
        return self.root + "/" + rel

    def upload(self, rel, data, **kwargs):
        return self.dbx.files_upload(data, self.p(rel), **kwargs)

    def assertApiError(self, call, *args, **kwargs):
        with self.assertRaises(dropbox.exceptions.ApiError) as cm:
            call(*args, **kwargs)
        self.assertTrue(cm.exception.request_id)  # X-Dropbox-Request-Id, reference §1.5
        return cm.exception.error

    def assertFileMetadata(self, md, rel, data):
        files = dropbox.files
        self.assertIsInstance(md, files.FileMetadata)
        self.assertEqual(md.path_display, self.p(rel))
        self.assertEqual(md.path_lower, self.p(rel).lower())
        self.assertEqual(md.name, rel.rsplit("/", 1)[-1])
        self.assertEqual(md.size, len(data))
        self.assertEqual(md.content_hash, content_hash(data))
        self.assertTrue(md.id.startswith("id:"), md.id)
        self.assertRegex(md.rev, r"^[0-9a-f]{9,}$")
        self.assertIsInstance(md.server_modified, datetime)


class AccountTest(SdkTestCase):
    def test_get_current_account(self):
        acct = self.dbx.users_get_current_account()
        self.assertIsInstance(acct, dropbox.users.FullAccount)
        self.assertTrue(acct.account_id.startswith("dbid:"))
        self.assertEqual(len(acct.account_id), 40)  # users_common.AccountId is 40 characters
        self.assertTrue(acct.name.display_name)
        self.assertTrue(acct.email)
        self.assertTrue(acct.root_info.root_namespace_id)
        self.assertTrue(acct.root_info.home_namespace_id)

    def test_space_usage_and_check_user(self):
        usage = self.dbx.users_get_space_usage()
        self.assertIsInstance(usage.used, int)
        self.assertTrue(usage.allocation.is_individual() or usage.allocation.is_team())
        self.assertEqual(self.dbx.check_user("ping").result, "ping")

    def test_invalid_token_is_auth_error(self):
        with self.assertRaises(dropbox.exceptions.AuthError) as cm:
            self.client(oauth2_access_token="not-a-token").users_get_current_account()
        self.assertTrue(cm.exception.error.is_invalid_access_token())


class StrictDecodingTest(unittest.TestCase):
    def test_strict_check_catches_unknown_fields(self):
        serializers = dropbox.dropbox_client.stone_serializers
        before = len(STRICT_VIOLATIONS)
        obj = {"metadata": {"name": "a", "id": "id:1", "path_lower": "/a", "path_display": "/a",
                            "not_in_the_spec": 1}}
        res = serializers.json_compat_obj_decode(dropbox.files.create_folder_v2.result_type, obj,
                                                 strict=False)
        self.assertEqual(res.metadata.name, "a")
        self.assertEqual(len(STRICT_VIOLATIONS), before + 1)
        self.assertIn("not_in_the_spec", STRICT_VIOLATIONS.pop())


class UploadTest(SdkTestCase):
    def test_add_then_overwrite(self):
        first = self.upload("a.txt", b"first")
        self.assertFileMetadata(first, "a.txt", b"first")
        # Identical content in add mode writes nothing and keeps the rev (§10.1).
        again = self.upload("a.txt", b"first")
        self.assertEqual(again.rev, first.rev)
        over = self.upload("a.txt", b"second version", mode=dropbox.files.WriteMode.overwrite)
        self.assertFileMetadata(over, "a.txt", b"second version")
        self.assertNotEqual(over.rev, first.rev)
        self.assertEqual(over.id, first.id)
        cm = datetime(2024, 5, 1, 12, 0, 0)
        dated = self.upload("dated.txt", b"d", client_modified=cm, mute=True)
        self.assertEqual(dated.client_modified, cm)

    def test_update_mode(self):
        first = self.upload("u.txt", b"one")
        second = self.upload("u.txt", b"two", mode=dropbox.files.WriteMode.update(first.rev))
        self.assertFileMetadata(second, "u.txt", b"two")
        err = self.assertApiError(self.upload, "u.txt", b"three",
                                  mode=dropbox.files.WriteMode.update(first.rev))
        self.assertTrue(err.is_path() and err.get_path().reason.is_conflict())
        renamed = self.upload("u.txt", b"three", mode=dropbox.files.WriteMode.update(first.rev),
                              autorename=True)
        self.assertEqual(renamed.name, "u (conflicted copy).txt")

    def test_add_conflict_is_upload_write_failed(self):
        self.upload("c.txt", b"original")
        err = self.assertApiError(self.upload, "c.txt", b"different")
        # UploadError.path is the struct UploadWriteFailed{reason: WriteError, upload_session_id}.
        self.assertTrue(err.is_path())
        failed = err.get_path()
        self.assertIsInstance(failed, dropbox.files.UploadWriteFailed)
        self.assertTrue(failed.reason.is_conflict())
        self.assertTrue(failed.reason.get_conflict().is_file())
        self.assertTrue(failed.upload_session_id)
        # The bytes wait in that session: finish it elsewhere with offset = size, no body.
        cursor = dropbox.files.UploadSessionCursor(failed.upload_session_id, len(b"different"))
        md = self.dbx.files_upload_session_finish(
            b"", cursor, dropbox.files.CommitInfo(path=self.p("c-rescued.txt")))
        self.assertFileMetadata(md, "c-rescued.txt", b"different")
        renamed = self.upload("c.txt", b"third", autorename=True)
        self.assertEqual(renamed.name, "c (1).txt")

    def test_folder_and_file_ancestor_conflicts(self):
        self.dbx.files_create_folder_v2(self.p("dir"))
        err = self.assertApiError(self.upload, "dir", b"x")
        self.assertTrue(err.get_path().reason.get_conflict().is_folder())
        self.upload("f", b"file")
        err = self.assertApiError(self.upload, "f/child.txt", b"x")
        self.assertTrue(err.get_path().reason.get_conflict().is_file_ancestor())

    def test_disallowed_and_malformed_names(self):
        err = self.assertApiError(self.upload, ".DS_Store", b"x")
        self.assertTrue(err.get_path().reason.is_disallowed_name())
        err = self.assertApiError(self.upload, "a/../b.txt", b"x")
        self.assertTrue(err.get_path().reason.is_malformed_path())

    def test_content_hash_argument(self):
        data = b"checked in transit"
        md = self.upload("h.txt", data, content_hash=content_hash(data))
        self.assertEqual(md.content_hash, content_hash(data))
        err = self.assertApiError(self.upload, "h2.txt", data, content_hash=content_hash(b"x"))
        self.assertTrue(err.is_content_hash_mismatch())


class ContentHashTest(SdkTestCase):
    VECTORS = [  # reference §12
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"hello", "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"),
        (b"\0" * BLOCK, "c7e946d101855255d919ef0c70718633adf77d3dfb3adeeecf5d0cb4e951be58"),
        (b"a" * (BLOCK + 1), "5f858b62ccd88447586305aec6fd53c96747cfebf527cbba129a6dfed47d9624"),
        (b"\0" * 2 * BLOCK, "03ae066c707c588592d9e27aa2444ca98423e0999024f1ceaa11a153790b37de"),
    ]

    def test_reference_vectors(self):
        for data, expected in self.VECTORS:
            self.assertEqual(content_hash(data), expected, len(data))

    def test_metadata_hash_matches_reference(self):
        for i, (data, expected) in enumerate(self.VECTORS[:2] + self.VECTORS[3:4]):
            md = self.upload("v%d.bin" % i, data)
            self.assertEqual(md.content_hash, expected)
            self.assertEqual(md.size, len(data))


class MetadataTest(SdkTestCase):
    def test_file_folder_not_found(self):
        up = self.upload("sub/f.txt", b"meta")
        md = self.dbx.files_get_metadata(self.p("sub/f.txt"))
        self.assertFileMetadata(md, "sub/f.txt", b"meta")
        self.assertEqual((md.id, md.rev), (up.id, up.rev))
        self.assertEqual(self.dbx.files_get_metadata(up.id).path_display, self.p("sub/f.txt"))
        self.assertEqual(self.dbx.files_get_metadata("rev:" + up.rev).id, up.id)  # ReadPath
        folder = self.dbx.files_get_metadata(self.p("sub"))
        self.assertIsInstance(folder, dropbox.files.FolderMetadata)
        self.assertEqual(folder.path_display, self.p("sub"))
        self.assertTrue(folder.id.startswith("id:"))
        err = self.assertApiError(self.dbx.files_get_metadata, self.p("missing"))
        self.assertTrue(err.is_path() and err.get_path().is_not_found())

    def test_include_deleted(self):
        self.upload("gone.txt", b"x")
        self.dbx.files_delete_v2(self.p("gone.txt"))
        md = self.dbx.files_get_metadata(self.p("gone.txt"), include_deleted=True)
        self.assertIsInstance(md, dropbox.files.DeletedMetadata)
        self.assertEqual(md.name, "gone.txt")

    def test_case_insensitive_case_preserving(self):
        self.upload("CaseDir/MixedName.TXT", b"case")
        md = self.dbx.files_get_metadata(self.p("casedir/MIXEDNAME.txt").lower())
        self.assertEqual(md.name, "MixedName.TXT")
        self.assertEqual(md.path_display, self.p("CaseDir/MixedName.TXT"))
        self.assertEqual(md.path_lower, self.p("casedir/mixedname.txt").lower())
        # The existing parent keeps its case; the new file keeps the uploader's.
        other = self.dbx.files_upload(b"2", self.p("CASEDIR/Second.txt"))
        self.assertEqual(other.path_display, self.p("CaseDir/Second.txt"))

    def test_unicode_nfc_names(self):
        name = "R\u00e9port \U0001F600 na\u00efve \u4e2d\u6587.txt"
        md = self.upload(name, name.encode("utf-8"))  # the SDK \u-escapes the header JSON
        self.assertEqual(md.name, name)
        nfd = unicodedata.normalize("NFD", self.p(name))
        self.assertNotEqual(nfd, self.p(name))
        found = self.dbx.files_get_metadata(nfd)
        self.assertEqual(found.id, md.id)
        self.assertEqual(found.name, name)
        listed = self.dbx.files_list_folder(self.root).entries
        self.assertEqual([e.name for e in listed], [name])
        # Dropbox-API-Result is a header too: the name must survive it.
        down_md, resp = self.dbx.files_download(self.p(name))
        self.assertEqual(down_md.name, name)
        self.assertEqual(resp.content, name.encode("utf-8"))
        # Reference §1.4 test vector: non-ASCII and DEL travel \u-escaped in the header.
        vector = self.p("R\u00e9port/\U0001F600 na\u00efve\x7f.txt")
        md = self.dbx.files_upload(b"vector", vector)
        self.assertEqual(md.path_display, vector)
        self.assertEqual(self.dbx.files_download(vector)[1].content, b"vector")


class ListFolderTest(SdkTestCase):
    def make_tree(self):
        paths = ["a/1.txt", "a/2.txt", "a/b/3.txt", "c/4.txt", "5.txt"]
        for rel in paths:
            self.upload(rel, rel.encode())
        self.dbx.files_create_folder_v2(self.p("empty"))
        expected = {self.p(r).lower() for r in paths}
        expected |= {self.p(d).lower() for d in ["a", "a/b", "c", "empty"]}
        return expected

    def list_all(self, **kwargs):
        res = self.dbx.files_list_folder(self.root, **kwargs)
        pages = [res]
        while res.has_more:
            res = self.dbx.files_list_folder_continue(res.cursor)
            pages.append(res)
        return pages

    def test_recursive_paged(self):
        expected = self.make_tree()
        pages = self.list_all(recursive=True, limit=3)
        self.assertGreater(len(pages), 2)
        entries = [e for page in pages for e in page.entries]
        seen = [e.path_lower for e in entries]
        self.assertEqual(set(seen) - {self.root.lower()}, expected)
        for i, e in enumerate(entries):  # parents come before their children (§5.3)
            parent = e.path_lower.rsplit("/", 1)[0]
            if parent != self.root.lower() and parent != "":
                self.assertIn(parent, seen[:i], e.path_lower)
        kinds = {e.path_lower: type(e) for e in entries}
        self.assertIs(kinds[self.p("a/b").lower()], dropbox.files.FolderMetadata)
        self.assertIs(kinds[self.p("a/b/3.txt").lower()], dropbox.files.FileMetadata)
        top = [e.name for page in self.list_all() for e in page.entries]
        self.assertEqual(sorted(top), ["5.txt", "a", "c", "empty"])

    def test_continue_reports_changes(self):
        self.make_tree()
        cursor = self.dbx.files_list_folder_get_latest_cursor(self.root, recursive=True).cursor
        self.assertTrue(cursor)
        self.upload("a/new.txt", b"new")
        self.dbx.files_delete_v2(self.p("c"))
        res = self.dbx.files_list_folder_continue(cursor)
        self.assertFalse(res.has_more)
        by_path = {e.path_lower: e for e in res.entries}
        self.assertIsInstance(by_path[self.p("a/new.txt").lower()], dropbox.files.FileMetadata)
        self.assertIsInstance(by_path[self.p("c").lower()], dropbox.files.DeletedMetadata)
        self.assertEqual(self.dbx.files_list_folder_continue(res.cursor).entries, [])

    def test_errors_and_reset(self):
        err = self.assertApiError(self.dbx.files_list_folder, "/no/such/folder")
        self.assertTrue(err.is_path() and err.get_path().is_not_found())
        self.upload("file.txt", b"x")
        err = self.assertApiError(self.dbx.files_list_folder, self.p("file.txt"))
        self.assertTrue(err.get_path().is_not_folder())
        cursor = self.dbx.files_list_folder(self.root).cursor
        CTX["main"].admin("POST", "/admin/reset_cursors")
        err = self.assertApiError(self.dbx.files_list_folder_continue, cursor)
        self.assertTrue(err.is_reset())
        err = self.assertApiError(self.dbx.files_list_folder_longpoll, cursor, timeout=30)
        self.assertTrue(err.is_reset())  # ListFolderLongpollError.reset (§5.5)

    def test_longpoll_times_out_then_sees_write(self):
        self.upload("seed.txt", b"s")
        cursor = self.dbx.files_list_folder_get_latest_cursor(self.root, recursive=True).cursor
        # noauth route on the notify host; the emulator caps the wait at --longpoll-max-s.
        started = time.monotonic()
        res = self.dbx.files_list_folder_longpoll(cursor, timeout=30)
        self.assertFalse(res.changes)
        self.assertGreaterEqual(time.monotonic() - started, LONGPOLL_MAX_S - 0.5)
        outcome = {}

        def poll():
            t0 = time.monotonic()
            outcome["res"] = self.dbx.files_list_folder_longpoll(cursor, timeout=30)
            outcome["elapsed"] = time.monotonic() - t0

        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.3)
        self.dbx.files_upload(b"wake", self.p("wake.txt"))
        waiter.join(30)
        self.assertTrue(outcome["res"].changes)
        self.assertLess(outcome["elapsed"], LONGPOLL_MAX_S)  # woken by the write, not the cap
        names = [e.name for e in self.dbx.files_list_folder_continue(cursor).entries]
        self.assertEqual(names, ["wake.txt"])
        self.assertTrue(self.dbx.files_list_folder_longpoll(cursor, timeout=30).changes)


class DownloadTest(SdkTestCase):
    def test_bytes_and_metadata(self):
        data = bytes(range(256)) * 1000
        up = self.upload("d/blob.bin", data)
        md, resp = self.dbx.files_download(self.p("d/blob.bin"))
        self.assertEqual(resp.content, data)
        self.assertFileMetadata(md, "d/blob.bin", data)
        self.assertEqual(md.rev, up.rev)
        err = self.assertApiError(self.dbx.files_download, self.p("d/none.bin"))
        self.assertTrue(err.is_path() and err.get_path().is_not_found())
        err = self.assertApiError(self.dbx.files_download, self.p("d"))
        self.assertTrue(err.get_path().is_not_file())


class FolderTest(SdkTestCase):
    def test_create_folder_and_conflicts(self):
        res = self.dbx.files_create_folder_v2(self.p("New/Deep"))
        self.assertIsInstance(res.metadata, dropbox.files.FolderMetadata)
        self.assertEqual(res.metadata.path_display, self.p("New/Deep"))
        self.assertEqual(res.metadata.name, "Deep")
        err = self.assertApiError(self.dbx.files_create_folder_v2, self.p("new/deep"))
        self.assertTrue(err.is_path() and err.get_path().get_conflict().is_folder())
        self.upload("afile", b"x")
        err = self.assertApiError(self.dbx.files_create_folder_v2, self.p("afile"))
        self.assertTrue(err.get_path().get_conflict().is_file())
        renamed = self.dbx.files_create_folder_v2(self.p("New/Deep"), autorename=True)
        self.assertEqual(renamed.metadata.name, "Deep (1)")


class RelocationTest(SdkTestCase):
    def test_move_copy_delete(self):
        up = self.upload("src/f.txt", b"move me")
        moved = self.dbx.files_move_v2(self.p("src/f.txt"), self.p("dst/g.txt")).metadata
        self.assertFileMetadata(moved, "dst/g.txt", b"move me")
        self.assertEqual(moved.id, up.id)  # ids survive moves
        err = self.assertApiError(self.dbx.files_get_metadata, self.p("src/f.txt"))
        self.assertTrue(err.get_path().is_not_found())
        copied = self.dbx.files_copy_v2(self.p("dst/g.txt"), self.p("dst/h.txt")).metadata
        self.assertFileMetadata(copied, "dst/h.txt", b"move me")
        self.assertNotEqual(copied.id, up.id)  # copies are new items
        folder = self.dbx.files_copy_v2(self.p("dst"), self.p("dst2")).metadata
        self.assertIsInstance(folder, dropbox.files.FolderMetadata)
        self.assertEqual(self.dbx.files_download(self.p("dst2/h.txt"))[1].content, b"move me")

        err = self.assertApiError(self.dbx.files_move_v2, self.p("nope"), self.p("x"))
        self.assertTrue(err.is_from_lookup() and err.get_from_lookup().is_not_found())
        err = self.assertApiError(self.dbx.files_move_v2, self.p("dst/g.txt"),
                                  self.p("dst/h.txt"))
        self.assertTrue(err.is_to() and err.get_to().get_conflict().is_file())
        err = self.assertApiError(self.dbx.files_move_v2, self.p("dst"), self.p("dst/inner"))
        self.assertTrue(err.is_cant_move_folder_into_itself())

        deleted = self.dbx.files_delete_v2(self.p("dst/g.txt")).metadata
        self.assertFileMetadata(deleted, "dst/g.txt", b"move me")  # as it was before (§8.1)
        gone = self.dbx.files_delete_v2(self.p("dst2")).metadata
        self.assertIsInstance(gone, dropbox.files.FolderMetadata)
        err = self.assertApiError(self.dbx.files_delete_v2, self.p("dst/g.txt"))
        self.assertTrue(err.is_path_lookup() and err.get_path_lookup().is_not_found())

    def test_delete_batch(self):
        self.upload("x.txt", b"x")
        self.upload("y/z.txt", b"z")
        Arg = dropbox.files.DeleteArg
        launch = self.dbx.files_delete_batch(
            [Arg(self.p("x.txt")), Arg(self.p("y")), Arg(self.p("missing"))])
        if launch.is_async_job_id():
            status = self.dbx.files_delete_batch_check(launch.get_async_job_id())
            for _ in range(50):
                if not status.is_in_progress():
                    break
                time.sleep(0.1)
                status = self.dbx.files_delete_batch_check(launch.get_async_job_id())
            entries = status.get_complete().entries
        else:
            entries = launch.get_complete().entries
        self.assertEqual(len(entries), 3)
        self.assertTrue(entries[0].is_success())
        self.assertIsInstance(entries[0].get_success().metadata, dropbox.files.FileMetadata)
        self.assertIsInstance(entries[1].get_success().metadata, dropbox.files.FolderMetadata)
        self.assertTrue(entries[2].is_failure())
        self.assertTrue(entries[2].get_failure().get_path_lookup().is_not_found())
        self.assertEqual(self.dbx.files_list_folder(self.root).entries, [])
        err = self.assertApiError(self.dbx.files_delete_batch_check, "dbjid:nonsense")
        self.assertTrue(err.is_invalid_async_job_id())

    def poll_v2(self, check, job):
        for _ in range(50):
            status = check(job)
            if not status.is_in_progress():
                return status.get_complete().entries
            time.sleep(0.1)
        self.fail("batch job still in progress")

    def test_move_batch_v2(self):
        a = self.upload("m/a.txt", b"a")
        self.upload("m/b.txt", b"b")
        self.upload("blocker.txt", b"blk")
        R = dropbox.files.RelocationPath
        launch = self.dbx.files_move_batch_v2([
            R(self.p("m/a.txt"), self.p("n/a.txt")),
            R(self.p("m/b.txt"), self.p("blocker.txt")),
            R(self.p("m/none"), self.p("n/none"))])
        if launch.is_complete():
            entries = launch.get_complete().entries
        else:
            entries = self.poll_v2(self.dbx.files_move_batch_check_v2, launch.get_async_job_id())
        self.assertEqual(len(entries), 3)
        ok = entries[0].get_success()
        self.assertIsInstance(ok, dropbox.files.FileMetadata)
        self.assertEqual((ok.path_display, ok.id), (self.p("n/a.txt"), a.id))
        fail = entries[1].get_failure()
        self.assertTrue(fail.is_relocation_error())
        self.assertTrue(fail.get_relocation_error().get_to().get_conflict().is_file())
        lookup = entries[2].get_failure().get_relocation_error()
        self.assertTrue(lookup.get_from_lookup().is_not_found())
        err = self.assertApiError(self.dbx.files_move_batch_check_v2, "nonsense-job")
        self.assertTrue(err.is_invalid_async_job_id())

    def test_copy_batch_v2(self):
        self.upload("s/a.txt", b"a")
        R = dropbox.files.RelocationPath
        launch = self.dbx.files_copy_batch_v2([R(self.p("s"), self.p("t"))])
        if launch.is_complete():
            entries = launch.get_complete().entries
        else:
            entries = self.poll_v2(self.dbx.files_copy_batch_check_v2, launch.get_async_job_id())
        self.assertIsInstance(entries[0].get_success(), dropbox.files.FolderMetadata)
        self.assertEqual(self.dbx.files_download(self.p("t/a.txt"))[1].content, b"a")
        self.assertEqual(self.dbx.files_download(self.p("s/a.txt"))[1].content, b"a")


class UploadSessionTest(SdkTestCase):
    def test_start_append_finish(self):
        parts = [b"alpha-", b"beta-", b"gamma"]
        sid = self.dbx.files_upload_session_start(parts[0]).session_id
        self.assertTrue(sid)
        cursor = dropbox.files.UploadSessionCursor(sid, len(parts[0]))
        self.dbx.files_upload_session_append_v2(parts[1], cursor,
                                                content_hash=content_hash(parts[1]))
        cursor.offset += len(parts[1])
        md = self.dbx.files_upload_session_finish(
            parts[2], cursor,
            dropbox.files.CommitInfo(path=self.p("s.txt"), mode=dropbox.files.WriteMode.overwrite))
        self.assertFileMetadata(md, "s.txt", b"".join(parts))

    def test_incorrect_offset(self):
        sid = self.dbx.files_upload_session_start(b"12345").session_id
        err = self.assertApiError(self.dbx.files_upload_session_append_v2, b"x",
                                  dropbox.files.UploadSessionCursor(sid, 3))
        self.assertTrue(err.is_incorrect_offset())
        self.assertEqual(err.get_incorrect_offset().correct_offset, 5)
        err = self.assertApiError(self.dbx.files_upload_session_finish, b"",
                                  dropbox.files.UploadSessionCursor(sid, 9),
                                  dropbox.files.CommitInfo(path=self.p("o.txt")))
        self.assertTrue(err.is_lookup_failed())
        self.assertEqual(err.get_lookup_failed().get_incorrect_offset().correct_offset, 5)
        err = self.assertApiError(self.dbx.files_upload_session_append_v2, b"x",
                                  dropbox.files.UploadSessionCursor("no-such-session", 0))
        self.assertTrue(err.is_not_found())
        md = self.dbx.files_upload_session_finish(
            b"6", dropbox.files.UploadSessionCursor(sid, 5),
            dropbox.files.CommitInfo(path=self.p("o.txt")))
        self.assertFileMetadata(md, "o.txt", b"123456")

    def test_closed_session(self):
        sid = self.dbx.files_upload_session_start(b"abc", close=True).session_id
        err = self.assertApiError(self.dbx.files_upload_session_append_v2, b"d",
                                  dropbox.files.UploadSessionCursor(sid, 3))
        self.assertTrue(err.is_closed())

    def test_finish_batch_v2(self):
        Arg, Cursor, Commit = (dropbox.files.UploadSessionFinishArg,
                               dropbox.files.UploadSessionCursor, dropbox.files.CommitInfo)
        self.dbx.files_create_folder_v2(self.p("folder-in-the-way"))
        blobs = [b"one", b"two two", b"three"]
        sids = [self.dbx.files_upload_session_start(b, close=True).session_id for b in blobs]
        targets = ["b/1.txt", "b/2.txt", "folder-in-the-way"]
        res = self.dbx.files_upload_session_finish_batch_v2([
            Arg(Cursor(sid, len(b)), Commit(path=self.p(t), mute=True))
            for sid, b, t in zip(sids, blobs, targets)])
        self.assertEqual(len(res.entries), 3)
        for entry, b, t in zip(res.entries[:2], blobs, targets):
            self.assertTrue(entry.is_success(), entry)
            self.assertFileMetadata(entry.get_success(), t, b)
        failure = res.entries[2].get_failure()
        self.assertTrue(failure.is_path() and failure.get_path().get_conflict().is_folder())
        # The failed entry's session is still usable with another path (§10.3).
        md = self.dbx.files_upload_session_finish(
            b"", Cursor(sids[2], len(blobs[2])), Commit(path=self.p("b/3.txt")))
        self.assertFileMetadata(md, "b/3.txt", blobs[2])

    def test_finish_batch_v1_and_check(self):
        sid = self.dbx.files_upload_session_start(b"v1", close=True).session_id
        with warnings.catch_warnings():  # the SDK warns that v1 is deprecated (so does §10.3)
            warnings.simplefilter("ignore", DeprecationWarning)
            launch = self.dbx.files_upload_session_finish_batch([dropbox.files.UploadSessionFinishArg(
                dropbox.files.UploadSessionCursor(sid, 2),
                dropbox.files.CommitInfo(path=self.p("v1.txt")))])
        if launch.is_async_job_id():
            status = self.dbx.files_upload_session_finish_batch_check(launch.get_async_job_id())
            self.assertTrue(status.is_complete())
            entries = status.get_complete().entries
        else:
            entries = launch.get_complete().entries
        self.assertFileMetadata(entries[0].get_success(), "v1.txt", b"v1")

    def test_start_batch(self):
        ids = self.dbx.files_upload_session_start_batch(2).session_ids
        self.assertEqual(len(ids), 2)
        self.assertNotEqual(ids[0], ids[1])
        Cursor = dropbox.files.UploadSessionCursor
        for i, sid in enumerate(ids):
            self.dbx.files_upload_session_append_v2(b"part%d" % i, Cursor(sid, 0), close=True)
        res = self.dbx.files_upload_session_finish_batch_v2([
            dropbox.files.UploadSessionFinishArg(Cursor(sid, 5),
                                                 dropbox.files.CommitInfo(path=self.p("%d" % i)))
            for i, sid in enumerate(ids)])
        for i, entry in enumerate(res.entries):
            self.assertFileMetadata(entry.get_success(), "%d" % i, b"part%d" % i)

    def test_concurrent_session(self):
        data = b"\0" * BLOCK + b"tail"
        sid = self.dbx.files_upload_session_start(
            b"", session_type=dropbox.files.UploadSessionType.concurrent).session_id
        Cursor = dropbox.files.UploadSessionCursor
        # The closing tail first: concurrent appends may arrive in any order.
        self.dbx.files_upload_session_append_v2(data[BLOCK:], Cursor(sid, BLOCK), close=True)
        err = self.assertApiError(self.dbx.files_upload_session_finish, b"", Cursor(sid, len(data)),
                                  dropbox.files.CommitInfo(path=self.p("c.bin")))
        self.assertTrue(err.is_concurrent_session_missing_data())
        self.dbx.files_upload_session_append_v2(data[:BLOCK], Cursor(sid, 0))
        md = self.dbx.files_upload_session_finish(b"", Cursor(sid, len(data)),
                                                  dropbox.files.CommitInfo(path=self.p("c.bin")))
        self.assertFileMetadata(md, "c.bin", data)


class EdgeCaseTest(SdkTestCase):
    def test_empty_file(self):
        md = self.upload("empty.txt", b"")
        self.assertFileMetadata(md, "empty.txt", b"")
        self.assertEqual(md.content_hash, ContentHashTest.VECTORS[0][1])
        self.assertEqual(self.dbx.files_download(self.p("empty.txt"))[1].content, b"")

    def test_listing_by_id_and_with_deleted(self):
        folder = self.dbx.files_create_folder_v2(self.p("byid")).metadata
        self.upload("byid/keep.txt", b"k")
        self.upload("byid/drop.txt", b"d")
        self.dbx.files_delete_v2(self.p("byid/drop.txt"))
        names = [e.name for e in self.dbx.files_list_folder(folder.id).entries]
        self.assertEqual(names, ["keep.txt"])
        entries = self.dbx.files_list_folder(folder.id, include_deleted=True).entries
        kinds = {e.name: type(e) for e in entries}
        self.assertIs(kinds["drop.txt"], dropbox.files.DeletedMetadata)
        self.assertIs(kinds["keep.txt"], dropbox.files.FileMetadata)

    def test_more_write_errors(self):
        self.upload("file", b"x")
        err = self.assertApiError(self.dbx.files_create_folder_v2, self.p("file/sub"))
        self.assertTrue(err.get_path().get_conflict().is_file_ancestor())
        err = self.assertApiError(self.dbx.files_copy_v2, self.p("none"), self.p("x"))
        self.assertTrue(err.get_from_lookup().is_not_found())
        sid = self.dbx.files_upload_session_start(b"abc").session_id
        err = self.assertApiError(self.dbx.files_upload_session_finish, b"def",
                                  dropbox.files.UploadSessionCursor(sid, 3),
                                  dropbox.files.CommitInfo(path=self.p("h.txt")),
                                  content_hash=content_hash(b"other"))
        self.assertTrue(err.is_content_hash_mismatch())
        err = self.assertApiError(self.dbx.files_upload_session_start, b"data",
                                  session_type=dropbox.files.UploadSessionType.concurrent)
        self.assertTrue(err.is_concurrent_session_data_not_allowed())

    def test_nested_batch_entries(self):
        self.upload("n/a/f.txt", b"f")
        R = dropbox.files.RelocationPath
        launch = self.dbx.files_move_batch_v2([R(self.p("n/a"), self.p("m/a")),
                                               R(self.p("n/a/f.txt"), self.p("m/f.txt"))])
        if launch.is_complete():
            entries = launch.get_complete().entries
        else:
            entries = RelocationTest.poll_v2(self, self.dbx.files_move_batch_check_v2,
                                             launch.get_async_job_id())
        for entry in entries:
            self.assertTrue(entry.get_failure().get_relocation_error()
                            .is_duplicated_or_nested_paths())


class OAuthTest(SdkTestCase):
    def refresh_client(self, **kwargs):
        kwargs.setdefault("oauth2_refresh_token", REFRESH_TOKEN)
        kwargs.setdefault("app_secret", APP_SECRET)
        return self.client(app_key=APP_KEY, **kwargs)

    def test_refresh_then_call(self):
        dbx = self.refresh_client()
        acct = dbx.users_get_current_account()  # refreshes first: no access token yet
        self.assertEqual(acct.account_id, self.dbx.users_get_current_account().account_id)
        self.assertTrue(dbx._oauth2_access_token)
        self.assertNotEqual(dbx._oauth2_access_token, TOKEN)
        self.assertIsNotNone(dbx._oauth2_access_token_expiration)

    def test_expired_token_is_refreshed_on_401(self):
        first = self.refresh_client()
        first.refresh_access_token()
        issued = first._oauth2_access_token
        # Claim a far expiry so the SDK does not refresh early; the server's 401
        # expired_access_token must make it refresh and retry once.
        dbx = self.refresh_client(oauth2_access_token=issued,
                                  oauth2_access_token_expiration=datetime.utcnow()
                                  + timedelta(hours=1))
        time.sleep(TOKEN_LIFETIME_S + 1.2)
        with self.assertRaises(dropbox.exceptions.AuthError) as cm:
            self.client(oauth2_access_token=issued).users_get_current_account()
        self.assertTrue(cm.exception.error.is_expired_access_token())
        self.assertTrue(dbx.users_get_current_account().account_id)
        self.assertNotEqual(dbx._oauth2_access_token, issued)

    def test_pkce_code_flow_and_revoke(self):
        flow = dropbox.DropboxOAuth2FlowNoRedirect(APP_KEY, use_pkce=True,
                                                   token_access_type="offline",
                                                   ca_certs=CTX["cert"])
        url = flow.start()  # on DROPBOX_WEB_HOST, which the emulator also serves
        self.assertTrue(url.startswith("https://%s/oauth2/authorize?" % CTX["main"].hostport))
        ctx = ssl.create_default_context(cafile=CTX["cert"])
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            code = resp.read().decode().strip()  # the no-redirect flow shows the code (§3.2)
        res = flow.finish(code)
        self.assertTrue(res.access_token and res.refresh_token)
        self.assertEqual(res.account_id, self.dbx.users_get_current_account().account_id)
        self.assertGreater(res.expires_at, datetime.utcnow())
        # A PKCE app refreshes without its secret (§3.3).
        dbx = self.client(oauth2_refresh_token=res.refresh_token, app_key=APP_KEY)
        self.assertEqual(dbx.users_get_current_account().account_id, res.account_id)
        access = dbx._oauth2_access_token
        dbx.auth_token_revoke()  # also revokes its refresh token (§3.4)
        with self.assertRaises(dropbox.exceptions.AuthError) as cm:
            self.client(oauth2_access_token=access).users_get_current_account()
        self.assertTrue(cm.exception.error.is_invalid_access_token())
        with self.assertRaises(dropbox.exceptions.AuthError):  # 400 invalid_grant
            self.client(oauth2_refresh_token=res.refresh_token,
                        app_key=APP_KEY).users_get_current_account()

    def test_bad_refresh_token_and_secret(self):
        bad = self.refresh_client(oauth2_refresh_token="wrong")
        with self.assertRaises(dropbox.exceptions.AuthError) as cm:  # 400 invalid_grant
            bad.users_get_current_account()
        self.assertTrue(cm.exception.error.is_invalid_access_token())
        wrong_secret = self.refresh_client(app_secret="nope")
        with self.assertRaises(dropbox.exceptions.BadInputError) as cm:  # 400 invalid_client
            wrong_secret.users_get_current_account()
        self.assertIn("invalid_client", cm.exception.message)


PROBE = "--probe"


def probe_rate_limit(sdk, cert):
    """Against an emulator with --faults 429=1: every /2/ request is a 429."""
    out = {}
    dbx = sdk.Dropbox(TOKEN, ca_certs=cert, timeout=30, max_retries_on_rate_limit=0)
    for name, call in [("rpc", dbx.users_get_current_account),
                       ("upload", lambda: dbx.files_upload(b"x", "/rate.txt"))]:
        try:
            call()
            out[name] = {"raised": None}
        except sdk.exceptions.RateLimitError as e:
            out[name] = {"raised": "RateLimitError", "backoff": e.backoff,
                         "too_many_requests": bool(e.error and e.error.reason
                                                   and e.error.reason.is_too_many_requests())}
    retrying = sdk.Dropbox(TOKEN, ca_certs=cert, timeout=30, max_retries_on_rate_limit=1)
    started = time.monotonic()
    try:
        retrying.users_get_current_account()
    except sdk.exceptions.RateLimitError:
        out["retry_raised"] = True
    out["retry_elapsed"] = time.monotonic() - started
    return out


def probe_write_lock(sdk, cert):
    """Against an emulator with a long --commit-lock-ms: a write during another one's commit."""
    holder = sdk.Dropbox(TOKEN, ca_certs=cert, timeout=30)
    waiter = threading.Thread(target=lambda: holder.files_upload(b"first", "/lock/first.txt"))
    waiter.start()
    time.sleep(WRITE_LOCK_MS / 1000 / 3)
    dbx = sdk.Dropbox(TOKEN, ca_certs=cert, timeout=30, max_retries_on_rate_limit=0)
    out = {"raised": None}
    try:
        dbx.files_upload(b"second", "/lock/second.txt")
    except sdk.exceptions.RateLimitError as e:
        out = {"raised": "RateLimitError", "backoff": e.backoff,
               "too_many_write_operations": bool(
                   e.error and e.error.reason.is_too_many_write_operations())}
    waiter.join(30)
    return out


PROBES = {"rate-limit": probe_rate_limit, "write-lock": probe_write_lock}


def run_probe(test, name, emulator_args):
    """Runs PROBES[name] in a child whose DROPBOX_API_*HOST point at a separate emulator
    (the SDK reads the hosts once, at import); returns its result and the emulator's
    counters."""
    emu = Emulator(name, emulator_args)
    try:
        env = dict(os.environ)
        for var in ("DROPBOX_API_HOST", "DROPBOX_API_CONTENT_HOST", "DROPBOX_API_NOTIFY_HOST"):
            env[var] = emu.hostport
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), PROBE, name,
                               CTX["cert"]], env=env, capture_output=True, text=True, timeout=60)
        test.assertEqual(proc.returncode, 0, proc.stderr)
        out = json.loads(proc.stdout)
        counters = emu.admin("GET", "/admin/counters")
    finally:
        stopped = emu.stop()
    test.assertIsNone(stopped)
    return out, counters


class RateLimitTest(unittest.TestCase):
    def test_429_surfaces_as_rate_limit_error(self):
        out, counters = run_probe(self, "rate-limit", ["--faults", "429=1"])
        for name in ("rpc", "upload"):
            self.assertEqual(out[name]["raised"], "RateLimitError", out)
            self.assertEqual(out[name]["backoff"], 1, out)  # retry_after / Retry-After: 1
            self.assertTrue(out[name]["too_many_requests"], out)
        self.assertTrue(out["retry_raised"])
        self.assertGreaterEqual(out["retry_elapsed"], 1.0)  # slept Retry-After before retrying
        self.assertEqual(counters["routes"]["users/get_current_account"], 3)
        self.assertEqual(counters["routes"]["files/upload"], 1)

    def test_write_lock_429_without_retry_after(self):
        # §2.3: too_many_write_operations often has no retry_after; the spec default is 1.
        out, counters = run_probe(self, "write-lock",
                                  ["--commit-lock-ms", str(WRITE_LOCK_MS)])
        self.assertEqual(out["raised"], "RateLimitError", out)
        self.assertTrue(out["too_many_write_operations"], out)
        self.assertEqual(out["backoff"], 1, out)
        self.assertEqual(counters["routes"]["files/upload"], 2)


def make_certificate(directory):
    cert = os.path.join(directory, "server.pem")
    key = os.path.join(directory, "server-key.pem")
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
           "-subj", "/CN=filesync-sdk-conformance", "-addext", "subjectAltName=IP:127.0.0.1",
           "-keyout", key, "-out", cert]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("openssl failed: " + proc.stderr)
    return cert, key


def trust_only(cert):
    # The SDK passes verify=True, and requests (Debian 2.28) then loads REQUESTS_CA_BUNDLE,
    # CURL_CA_BUNDLE or certifi's bundle over the SDK's ca_certs; so ca_certs alone does not
    # make it trust our certificate. Loopback requests must not go through a proxy either.
    os.environ.pop("CURL_CA_BUNDLE", None)
    os.environ["REQUESTS_CA_BUNDLE"] = cert
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def main():
    if len(sys.argv) == 4 and sys.argv[1] == PROBE:
        import dropbox as sdk
        print(json.dumps(PROBES[sys.argv[2]](sdk, sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", required=True)
    args, rest = parser.parse_known_args()
    if importlib.util.find_spec("dropbox") is None:
        print("SKIPPED: the Dropbox Python SDK is not importable by %s (Debian: apt-get install "
              "python3-dropbox; scripts/setup.sh --test installs it)" % sys.executable)
        return SKIP
    if shutil.which("openssl") is None:
        print("SKIPPED: needs the openssl command to make a self-signed certificate")
        return SKIP

    work = tempfile.mkdtemp(prefix="filesync-sdk-")
    try:
        CTX["emulator"] = os.path.abspath(args.emulator)
        CTX["work"] = work
        CTX["cert"], CTX["key"] = make_certificate(work)
        trust_only(CTX["cert"])
        main_emu = Emulator("main", [
            "--app-key", APP_KEY, "--app-secret", APP_SECRET, "--refresh-token", REFRESH_TOKEN,
            "--token-lifetime", str(TOKEN_LIFETIME_S), "--longpoll-max-s", str(LONGPOLL_MAX_S)])
        CTX["main"] = main_emu
        for var in ("DROPBOX_API_HOST", "DROPBOX_API_CONTENT_HOST", "DROPBOX_API_NOTIFY_HOST",
                    "DROPBOX_WEB_HOST"):
            os.environ[var] = main_emu.hostport
        global dropbox
        try:
            import dropbox as sdk
            import dropbox.files  # noqa: F401  (submodules used by name)
            import dropbox.users  # noqa: F401
        except Exception as e:  # a broken install (e.g. missing requests) is a skip too
            main_emu.stop()
            print("SKIPPED: import dropbox failed: %r" % e)
            return SKIP
        dropbox = sdk
        decode_strictly(dropbox)
        logging.getLogger("dropbox").setLevel(logging.ERROR)  # expected refresh warnings
        print("dropbox SDK %s, emulator at %s" % (dropbox.__version__, main_emu.hostport))
        started = time.monotonic()
        prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
        stopped = main_emu.stop()
        print("ran in %.1f s" % (time.monotonic() - started))
        if STRICT_VIOLATIONS:
            print("FAIL: responses the SDK decodes only leniently:\n  " +
                  "\n  ".join(STRICT_VIOLATIONS))
            return 1
        if stopped:
            print("FAIL: " + stopped)
            return 1
        return 0 if prog.result.wasSuccessful() else 1
    finally:
        if "main" in CTX:
            CTX["main"].stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

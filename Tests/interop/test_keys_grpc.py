"""A Python client generated from proto/ calls the keys service of a running `lumen serve`
over HTTP/2 (gRPC), as any polyglot tool would."""

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def metadata(token):
    return (("authorization", f"Bearer {token}"),)


def error_info(error):
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries google.rpc.Status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


def test_create_and_list_keys_over_http2(server, lumen_api):
    tenant = server.bootstrap("Acme", "admin@acme.test")
    pb, rpc = lumen_api.keys_pb2, lumen_api.keys_pb2_grpc
    with grpc.insecure_channel(server.grpc_target) as channel:
        keys = rpc.KeysServiceStub(channel)
        created = keys.CreateKey(
            pb.CreateKeyRequest(name="python worker", limit_micros=2_500_000, models=["gpt-4o-mini"]),
            metadata=metadata(tenant["management_token"]),
        )
        assert created.secret.startswith("sk-")
        assert created.key.id.startswith("key_")
        assert created.key.organization_id == tenant["organization_id"]
        assert created.key.limit_micros == 2_500_000
        assert created.key.status == pb.KEY_STATUS_ACTIVE

        listed = keys.ListKeys(pb.ListKeysRequest(), metadata=metadata(tenant["management_token"]))
        assert [k.id for k in listed.keys] == [created.key.id]
        key = listed.keys[0]
        assert key.hint == created.secret[:4] + "..." + created.secret[-4:]
        assert key.key_prefix == created.secret[:9] + "..."
        assert created.secret not in str(listed)
        assert listed.page_info.total == 1


def test_page_tokens_over_http2(server, lumen_api):
    """A long list walked by next_page_token, as a polyglot client would: every key once, newest
    first, the same order as one long page; a token it did not give is INVALID_ARGUMENT."""
    tenant = server.bootstrap("Acme", "admin@acme.test")
    pb, rpc = lumen_api.keys_pb2, lumen_api.keys_pb2_grpc
    auth = metadata(tenant["management_token"])

    def listing(limit, token=""):
        request = pb.ListKeysRequest(page_token=token)
        request.page.limit = limit
        return request

    with grpc.insecure_channel(server.grpc_target) as channel:
        keys = rpc.KeysServiceStub(channel)
        for index in range(12):
            keys.CreateKey(pb.CreateKeyRequest(name=f"worker {index}"), metadata=auth)
        whole = keys.ListKeys(listing(100), metadata=auth)
        assert len(whole.keys) == 12 and whole.next_page_token == ""
        walked, request = [], listing(5)
        while True:
            page = keys.ListKeys(request, metadata=auth)
            walked += [key.id for key in page.keys]
            if not page.next_page_token:
                assert not page.page_info.has_more
                break
            request = listing(5, page.next_page_token)
        assert walked == [key.id for key in whole.keys]
        with pytest.raises(grpc.RpcError) as bad:
            keys.ListKeys(pb.ListKeysRequest(page_token="not-a-token"), metadata=auth)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(bad.value).reason == "invalid_page_token"


def test_errors_over_http2(server, lumen_api):
    tenant = server.bootstrap("Acme", "admin@acme.test")
    other = server.bootstrap("Globex", "admin@globex.test")
    pb, rpc = lumen_api.keys_pb2, lumen_api.keys_pb2_grpc
    with grpc.insecure_channel(server.grpc_target) as channel:
        keys = rpc.KeysServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            keys.ListKeys(pb.ListKeysRequest())
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED

        with pytest.raises(grpc.RpcError) as retired:
            keys.CreateKey(pb.CreateKeyRequest(limit_micros=1, limit_currency="CNY"),
                           metadata=metadata(tenant["management_token"]))
        assert retired.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(retired.value)
        assert info.reason == "currency_retired"
        assert info.domain == "lumen"
        assert info.metadata["param"] == "limit_currency"

        with pytest.raises(grpc.RpcError) as foreign:
            keys.ListKeys(pb.ListKeysRequest(organization_id=other["organization_id"]),
                          metadata=metadata(tenant["management_token"]))
        assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED

        with pytest.raises(grpc.RpcError) as internal:
            keys.Authenticate(pb.AuthenticateRequest(secret="sk-x"), metadata=metadata(tenant["management_token"]))
        assert internal.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_accounts_over_http2(server, lumen_api):
    tenant = server.bootstrap("Acme", "admin@acme.test")
    pb, rpc = lumen_api.accounts_pb2, lumen_api.accounts_pb2_grpc
    with grpc.insecure_channel(server.grpc_target) as channel:
        accounts = rpc.AccountsServiceStub(channel)
        user = accounts.CreateUser(pb.CreateUserRequest(email="grace@acme.test"),
                                   metadata=metadata(tenant["management_token"])).user
        assert user.organization_id == tenant["organization_id"]
        found = accounts.GetUser(pb.GetUserRequest(email="GRACE@acme.test"),
                                 metadata=metadata(tenant["management_token"])).user
        assert found.id == user.id

import time
from tests.helpers import bearer
def test_p(request):
    t=time.perf_counter(); app=request.getfixturevalue("app"); t1=time.perf_counter()
    request.getfixturevalue("orgs"); t2=time.perf_counter()
    mk=request.getfixturevalue("make_token"); tok=mk("tt-leeds","case_system"); t3=time.perf_counter()
    c=app.test_client(); r=c.post("/v1/consents", json={"subject":{"nhs_number":"9434765919"},"purpose":"referral","recipients":["tt-leeds"],"data_categories":["identity"],"form":"verbal"}, headers=bearer(tok)); t4=time.perf_counter()
    r=c.get("/healthz"); t5=time.perf_counter()
    print(f"\napp {t1-t:.3f} orgs {t2-t1:.3f} token {t3-t2:.3f} post {t4-t3:.3f} health {t5-t4:.3f}")

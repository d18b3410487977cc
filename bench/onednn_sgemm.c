// oneDNN's dnnl_sgemm on the linear-layer shapes of a MiniLM-L6 training step.
// Issue #24: the candidate for a faster host matmul. Build and run (Debian: apt-get install
// libdnnl-dev), on an otherwise idle machine, one thread count at a time:
//   gcc -O2 bench/onednn_sgemm.c -o /tmp/onednn_sgemm -ldnnl
//   OMP_NUM_THREADS=2 /tmp/onednn_sgemm
// Compare with the same shapes in bench/gemm_vs_blas.sh (the gemm crate, PyTorch, NumPy).
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(void){
  struct {const char*name;int m,k,n;char ta,tb;int count;} s[]={
   {"proj fwd",2048,384,384,'N','N',24},{"proj dX",2048,384,384,'N','T',24},{"proj dW",384,2048,384,'T','N',24},
   {"up fwd",2048,384,1536,'N','N',6},{"up dX",2048,1536,384,'N','T',6},{"up dW",384,2048,1536,'T','N',6},
   {"down fwd",2048,1536,384,'N','N',6},{"down dX",2048,384,1536,'N','T',6},{"down dW",1536,2048,384,'T','N',6}};
  double tf=0,tt=0;
  for(int i=0;i<9;i++){
    int m=s[i].m,k=s[i].k,n=s[i].n;
    float*A=malloc(sizeof(float)*m*k),*B=malloc(sizeof(float)*k*n),*C=malloc(sizeof(float)*m*n);
    for(long j=0;j<(long)m*k;j++)A[j]=(rand()%2000-1000)/1000.f;
    for(long j=0;j<(long)k*n;j++)B[j]=(rand()%2000-1000)/1000.f;
    int lda=s[i].ta=='N'?k:m, ldb=s[i].tb=='N'?n:k;
    double ts[23];
    for(int r=0;r<23;r++){double t0=now();dnnl_sgemm(s[i].ta,s[i].tb,m,n,k,1.f,A,lda,B,ldb,0.f,C,n);ts[r]=now()-t0;}
    qsort(ts+3,20,sizeof(double),cmp);double t=ts[13];
    double fl=2.0*m*n*k; tf+=fl*s[i].count; tt+=t*s[i].count;
    printf("%-10s [%d x %d]·[%d x %d] %c%c  %.3f ms  %.1f GFLOP/s\n",s[i].name,m,k,k,n,s[i].ta,s[i].tb,t*1e3,fl/t/1e9);
    free(A);free(B);free(C);}
  printf("linear products of a step: %.3f s, %.1f GFLOP/s\n",tt,tf/tt/1e9);
}

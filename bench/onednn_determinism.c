// Issue #24: does oneDNN's sgemm give the same bits at 1 and 2 threads on the step's
// linear shapes? (stab promises that a run's results do not depend on its thread count.)
//   gcc -O2 -fopenmp bench/onednn_determinism.c -o /tmp/onednn_det -ldnnl && /tmp/onednn_det
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void){
  struct {int m,k,n;char ta,tb;} s[]={{2048,384,384,'N','N'},{2048,384,384,'N','T'},{384,2048,384,'T','N'},
   {2048,384,1536,'N','N'},{2048,1536,384,'N','T'},{384,2048,1536,'T','N'},{2048,1536,384,'N','N'},{1536,2048,384,'T','N'},{7,2048,384,'T','N'}};
  for(int i=0;i<9;i++){
    int m=s[i].m,k=s[i].k,n=s[i].n;
    float*A=malloc(4L*m*k),*B=malloc(4L*k*n),*C1=malloc(4L*m*n),*C2=malloc(4L*m*n);
    srand(i); for(long j=0;j<(long)m*k;j++)A[j]=(rand()%2000-1000)/997.f;
    for(long j=0;j<(long)k*n;j++)B[j]=(rand()%2000-1000)/991.f;
    int lda=s[i].ta=='N'?k:m, ldb=s[i].tb=='N'?n:k;
    omp_set_num_threads(1); dnnl_sgemm(s[i].ta,s[i].tb,m,n,k,1.f,A,lda,B,ldb,0.f,C1,n);
    omp_set_num_threads(2); dnnl_sgemm(s[i].ta,s[i].tb,m,n,k,1.f,A,lda,B,ldb,0.f,C2,n);
    long diff=0; for(long j=0;j<(long)m*n;j++) if(memcmp(&C1[j],&C2[j],4)) diff++;
    printf("[%d x %d]·[%d x %d] %c%c: %ld of %ld elements differ between 1 and 2 threads\n",m,k,k,n,s[i].ta,s[i].tb,diff,(long)m*n);
  }
}
